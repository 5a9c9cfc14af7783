"""An in-memory stand-in for gkbroad.kafka.client.ConsumerClient.

A real fake, not a mock: it keeps a log of records per partition, the
partitions assigned, a fetch position per partition, the pause state and
the committed offsets, and honours the client's contract (poll returns
records from the positions of assigned, unpaused partitions and waits when
there are none; commits complete later, on another greenlet; revocation is
awaited by the group's rebalance handler). Tests drive the group's
membership with ``assign``, ``revoke`` and ``lose`` and can make the
"broker" refuse commits.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import gevent
from gevent.event import Event

from gkbroad.config.validation import validate
from gkbroad.kafka.client import ConfigurationRefused, GroupClient, JoinAnswers, TopicPartition
from gkbroad.kafka.group.consumer_group import ConsumerGroup
from gkbroad.kafka.options import KafkaProducerOptions

__all__ = ["FakeConsumerClient", "FakeFuture", "FakeRecord", "make_group"]


class FakeRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes


class CommitRefused(Exception):
    """What the fake broker answers while commits are refused."""


class FakeFuture:
    """The part of kafka-python's Future the group uses."""

    def __init__(self) -> None:
        self.is_done = False
        self.value: Any = None
        self.exception: BaseException | None = None
        self._callbacks: list = []
        self._event = Event()

    def success(self, value: Any) -> FakeFuture:
        return self._finish(value, None)

    def failure(self, exc: BaseException) -> FakeFuture:
        return self._finish(None, exc)

    def _finish(self, value: Any, exc: BaseException | None) -> FakeFuture:
        assert not self.is_done, "a future finishes once"
        self.is_done, self.value, self.exception = True, value, exc
        self._event.set()
        for callback in self._callbacks:
            callback(exc if exc is not None else value)
        return self

    def failed(self) -> bool:
        return self.is_done and self.exception is not None

    def add_both(self, callback: Any) -> FakeFuture:
        if self.is_done:
            callback(self.exception if self.exception is not None else self.value)
        else:
            self._callbacks.append(callback)
        return self


class FakeConsumerClient:
    """``logs`` maps (topic, partition) to the number of records it holds."""

    def __init__(self, logs: dict[tuple[str, int], int], *, refuse_configuration: bool = False):
        self.logs = {
            TopicPartition(*key): [FakeRecord(key[0], key[1], offset, b"v%d" % offset) for offset in range(count)]
            for key, count in logs.items()
        }
        self.assigned: set = set()
        self.positions: dict = {}
        self.committed: dict = {}  # tp -> offset Kafka stores (last processed + 1)
        self.commit_requests: list[dict] = []
        self.fetch_paused: set = set()
        self.refuse_commits = False
        self.commit_delay = 0.0
        self.close_delay = 0.0  # a broker that does not answer the leave
        self.connect_delay = 0.0  # a bootstrap that gets no answer for this long
        self.refuse_configuration = refuse_configuration
        self.handler: Any = None
        self.closed = False
        self.abandoned = False
        self.polls = 0
        self.poll_error: Exception | None = None  # raised by every poll while set
        self.missing: list[str] = []  # subscribed topics the "cluster" does not know
        self.unreachable = False
        self.member_state = "stable"  # what membership() says once connected
        self.generation = 1
        self._join_answers = JoinAnswers()
        self.choose_rejoin: Any = None
        self.silence: float | None = 0.0  # seconds since the "coordinator" last answered; None: not a stable member
        self.memberships_forgotten = 0
        self._connected = False

    # --------------------------------------------------- the client contract

    bootstrap_servers = "fake:9092"
    request_timeout = 1.0
    session_timeout = 10.0
    reconnect_backoff_max = 1.0
    static_member = False

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, handler: Any) -> None:
        if self.refuse_configuration:
            raise ConfigurationRefused("fake: no such setting")
        gevent.sleep(self.connect_delay)
        self.handler = handler
        self._connected = True

    def close(self, timeout: float | None) -> None:
        gevent.sleep(self.close_delay)
        if self.assigned:
            _drive(self.handler.revoked(set(self.assigned)))
        self.assigned.clear()
        self._connected = False
        self.closed = True

    def abandon(self, timeout: float) -> None:
        self._connected = False
        self.abandoned = True

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        self.polls += 1
        if self.poll_error is not None:
            raise self.poll_error
        fetched = {}
        for tp in sorted(self.assigned - self.fetch_paused):
            position = self.positions[tp]
            batch = self.logs[tp][position : position + max_records]
            if batch:
                fetched[tp] = batch
                self.positions[tp] = batch[-1].offset + 1
                break  # like kafka-python: one partition's batch per poll
        if not fetched:
            gevent.sleep(timeout_ms / 1000)
        return fetched

    def assignment(self) -> set:
        return set(self.assigned)

    def paused(self) -> set:
        return set(self.fetch_paused)

    def pause(self, tps: Any) -> None:
        self.fetch_paused |= set(tps)

    def resume(self, tps: Any) -> None:
        self.fetch_paused -= set(tps)

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, tp: Any) -> None:
        self.positions[tp] = 0

    def seek_to_end(self, tp: Any) -> None:
        self.positions[tp] = len(self.logs[tp])

    def offsets_for_times(self, tps: Any, timestamp_ms: int) -> dict[Any, int | None]:
        """The fake's records are stamped with their offset: the offset equal to the time, None past the end."""
        return {tp: timestamp_ms if timestamp_ms < len(self.logs[tp]) else None for tp in tps}

    def fetch_state(self, tp: Any) -> tuple[int | None, int | None]:
        return len(self.logs[tp]), self.positions.get(tp)

    def commit(self, offsets: dict, timeout: float | None = None) -> FakeFuture:
        if not self._connected:
            raise ConnectionError("fake: closed")
        future = FakeFuture()
        self.commit_requests.append(dict(offsets))

        def answer() -> None:
            if self.refuse_commits:
                future.failure(CommitRefused("fake: commit refused"))
                return
            for tp, offset in offsets.items():
                self.committed[tp] = offset + 1
            future.success(None)

        gevent.spawn_later(self.commit_delay, answer)
        return future

    def new_future(self) -> FakeFuture:
        return FakeFuture()

    def resolve_soon(self, future: FakeFuture, error: BaseException | None = None) -> None:
        gevent.spawn(lambda: future.is_done or (future.success(None) if error is None else future.failure(error)))

    def group_metadata(self) -> Any:
        return ("fake-group-metadata", self.generation) if self._connected else None

    async def wait(self, future: FakeFuture, timeout: float | None) -> bool:
        future._event.wait(timeout)
        return future.is_done

    def reachable(self) -> bool:
        return self._connected and not self.unreachable

    def missing_topics(self) -> list[str]:
        return list(self.missing)

    def membership(self) -> tuple[str, int]:
        return (self.member_state, self.generation) if self._connected else ("unjoined", -1)

    @property
    def join_answers(self) -> JoinAnswers:
        return self._join_answers

    def on_refused_sync(self, choose: Any) -> None:
        self.choose_rejoin = choose

    def refuse_sync(self) -> str | None:
        """The coordinator answers a SyncGroup with REBALANCE_IN_PROGRESS; the member id to rejoin under, if any."""
        self.join_answers.refused_syncs += 1
        return self.choose_rejoin(self.join_answers)

    def coordinator_silence(self) -> float | None:
        return self.silence

    def forget_membership(self) -> None:
        """Like kafka-python: the member is not stable any more, and once the
        coordinator answers (a test calls ``lose`` and ``assign``) it rejoins."""
        self.memberships_forgotten += 1
        self.silence = None

    # ----------------------------------------------- what a test makes happen

    def assign(self, *keys: tuple[str, int]) -> None:
        """The group coordinator gives this member partitions."""
        tps = {TopicPartition(*key) for key in keys}
        for tp in tps:
            self.positions[tp] = self.committed.get(tp, 0)
        self.assigned |= tps
        self.handler.assigned(tps)

    def revoke(self, *keys: tuple[str, int]) -> gevent.Greenlet:
        """A rebalance takes partitions away; returns the greenlet running the
        group's (awaited) revocation, like kafka-python's I/O loop would."""
        tps = {TopicPartition(*key) for key in keys}

        def run() -> None:
            _drive(self.handler.revoked(tps))
            self.assigned -= tps
            self.fetch_paused -= tps

        return gevent.spawn(run)

    def lose(self, *keys: tuple[str, int]) -> None:
        tps = {TopicPartition(*key) for key in keys}
        self.assigned -= tps
        self.handler.lost(tps)


def _drive(coroutine: Any) -> Any:
    """Run a rebalance coroutine to its end. The fake's ``wait`` blocks the
    greenlet instead of suspending the coroutine, so one send finishes it."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the fake client's coroutines never suspend")


def make_group(
    client: FakeConsumerClient, topics: list[str], cls: type[ConsumerGroup] = ConsumerGroup, **options: Any
) -> Any:
    """A ConsumerGroup over ``client``, built from options the schema validated."""
    # mypy (scripts/test.sh) checks here that the fake keeps the client contract.
    seam: GroupClient[FakeFuture] = client
    opts = validate(
        KafkaProducerOptions,
        {
            "group_name": "unit-group",
            "client": {"bootstrap_servers": "fake:9092"},
            "topics": [{"name": topic, "offset_reset_policy": "earliest"} for topic in topics],
            **options,
        },
        "producer.module",
    )
    return cls.from_options(opts, consumer_client=seam)


def pull_all(group: Any, partition: int, count: int, timeout: float = 5) -> tuple[int | None, list[int]]:
    """Pull ``count`` records of ``partition``; returns (epoch, offsets)."""
    offsets: list[int] = []
    epoch: int | None = None
    deadline = time.monotonic() + timeout
    while len(offsets) < count:
        assert time.monotonic() < deadline, f"pulled {offsets} of {count}"
        epoch, records = group.pull("t", partition, count - len(offsets))
        offsets += [r.offset for r in records]
        if not records:
            group.wait_for_records(0.05)
    return epoch, offsets


class FakeTransactionalProducer:
    """An in-memory transactional producer (gkbroad.kafka.client.TransactionalClient).

    ``committed`` and ``aborted`` list the transactions as (records, offsets).
    ``fail[step] = exc`` makes the next call of that step raise; a step in
    ``hang`` never returns (a broker that dropped the connection).
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[tuple[list, dict]] = []
        self.aborted: list[tuple[list, dict]] = []
        self.fail: dict[str, BaseException] = {}
        self.hang: set[str] = set()
        self.closed = False
        self._open: tuple[list, dict] | None = None

    def _call(self, step: str) -> None:
        self.calls.append(step)
        if step in self.hang:
            Event().wait()
        if step in self.fail:
            raise self.fail.pop(step)

    def init(self) -> None:
        self._call("init")

    def begin(self) -> None:
        self._call("begin")
        assert self._open is None, "begin with a transaction open"
        self._open = ([], {})

    def send(self, records: Any) -> None:
        self._call("send")
        assert self._open is not None, "send outside a transaction"
        self._open[0].extend(records)

    def send_offsets(self, offsets: dict, group_metadata: Any) -> None:
        self._call("send_offsets")
        assert self._open is not None and group_metadata is not None
        self._open[1].update(offsets)

    def commit(self) -> None:
        self._call("commit")
        assert self._open is not None
        self.committed.append(self._open)
        self._open = None

    def abort(self) -> None:
        self._call("abort")
        assert self._open is not None
        self.aborted.append(self._open)
        self._open = None

    def close(self, timeout: float) -> None:
        self.closed = True
