"""LibrdkafkaClient: the consumer group's door into librdkafka (confluent-kafka), under gevent.

The second ``GroupClient`` (group_client.py) beside kafka-python's
``ConsumerClient``, chosen with ``client_library = "librdkafka"``. What the
binding allows under gevent, and how this class keeps to it (probed on this
machine, see docs/guides/clients.md):

- One greenlet only may call ``consume``/``close`` and the consumer's other
  methods: the binding keeps its call state per OS thread, and a second
  greenlet calling in while the first is inside a callback aborts the
  process. So only the poll greenlet calls the consumer; what other
  greenlets read (assignment, pauses, broker connections, the member state)
  is kept here, from the callbacks and from librdkafka's statistics reports
  (rdkafka_support.Statistics). The one exception is the cached high
  watermark, a call that makes no request and serves no callback
  (rdkafka_offsets).
- ``consume(timeout=0)`` never blocks the hub; when it brings nothing the
  poll greenlet sleeps in gevent, 1 ms at first and up to 5 ms while idle.
- Rebalance callbacks run inside ``consume()`` on the poll greenlet and may
  wait cooperatively: the revoke callback runs the group's drain and final
  commit there, bounded by the drain timeout, before librdkafka gives the
  partitions up. Lost partitions are dropped at once.
- Commits are sent by the poll greenlet too (rdkafka_commits says why and how).
- The group metadata of exactly-once's transactions (``consumer_group_metadata()``,
  a consumer call) is read by the poll greenlet, after each assignment and
  revocation and at each poll, and handed out as it was last read.
- ``close``, which waits on the network, runs in gevent's thread pool (each
  OS thread has its own call state), and a greenlet waits for it with a
  timeout: it can block for ever when the broker hangs. Offsets at a time
  and high watermarks never make the consumer wait on the network
  (rdkafka_offsets).
- librdkafka's ``pause`` drops the records it prefetched for the partition
  and its ``resume`` waits for a new fetch (from the position after the last
  record ``consume`` returned, so nothing is skipped). So gkbroad's pause is
  held back (rdkafka_holdback): the partition keeps fetching, what
  ``consume`` brings for it is kept here until the resume, and librdkafka is
  paused only once a poll's worth is kept. A partition revoked or lost is
  resumed in librdkafka first: it would stay paused when assigned again.
- Offsets are stored by gkbroad only (auto commit and auto offset store off);
  a partition without a usable committed offset is reported as
  ``PositionsLost`` (``auto.offset.reset=error``) and the poller seeks it as
  its topic's policy says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent import get_hub
from kafka.future import Future
from kafka.structs import TopicPartition

from .consumer import ConfigurationRefused, PositionsLost
from .gevent_check import check_gevent_patched
from .group_client import JoinAnswers, RebalanceHandler
from .rdkafka_commits import Commits
from .rdkafka_holdback import Holdback
from .rdkafka_offsets import cached_highwater, offsets_at_time
from .rdkafka_settings import import_confluent_kafka
from .rdkafka_support import (
    LibrdkafkaError,
    Statistics,
    as_records,
    by_partition,
    drive,
    kafka_error,
    partition_list,
)

__all__ = ["LibrdkafkaClient"]

logger = logging.getLogger(__name__)
librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_IDLE_FIRST, _IDLE_LONGEST = 0.001, 0.005
_STATISTICS_MS = 1000
_AUTO_OFFSET_RESET, _MAX_POLL_EXCEEDED, _UNKNOWN_TOPIC, _UNKNOWN_TOPIC_OR_PART = -140, -147, -188, 3
_ALL_BROKERS_DOWN = -187


class LibrdkafkaClient:
    """One confluent-kafka ``Consumer`` for one group membership (a ``GroupClient[Future]``).

    ``settings`` is librdkafka's configuration (gkbroad.kafka.group.settings
    made it); ``poll``, ``connect``, ``pause``/``resume``/``seek*`` and
    ``close`` belong to the poll greenlet, as for ConsumerClient.
    """

    def __init__(self, settings: dict[str, Any], topics: Iterable[str]):
        check_gevent_patched()
        self._module = import_confluent_kafka()
        self._settings = dict(settings)
        self._topics = list(topics)
        self._consumer: Any = None
        self._handler: RebalanceHandler | None = None
        self._assigned: set[TopicPartition] = set()
        self._holdback: Holdback[TopicPartition, Any] = Holdback()
        self._names: dict[tuple[str, int], TopicPartition] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._stats = Statistics()
        self._missing: set[str] = set()
        self._assignments = 0
        self._losses = 0
        self._closing = False
        self._forget = False
        self._positions_lost: PositionsLost | None = None
        self._idle = _IDLE_FIRST
        self._commits = Commits(self._module, lambda: self._losses)
        self._releasing = False  # inside the revoke callback, or close() releasing the partitions
        self._cooperative = settings.get("partition.assignment.strategy") == "cooperative-sticky"
        self._group_metadata: Any = None  # as the poll greenlet last read it
        # time.monotonic() when the last assignment or release ended: no report is read inside a rebalance
        # callback. A loss does not count: it says nothing of the coordinator.
        self._settled_at = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return str(self._settings["bootstrap.servers"])

    @property
    def settings(self) -> dict[str, Any]:
        """A copy of the configuration the consumer is (or will be) created with, callbacks aside."""
        return dict(self._settings)

    @property
    def request_timeout(self) -> float:
        """librdkafka's ``socket.timeout.ms`` (default 60 s), in seconds."""
        return float(self._settings.get("socket.timeout.ms", 60000)) / 1000

    @property
    def session_timeout(self) -> float:
        return float(self._settings["session.timeout.ms"]) / 1000

    @property
    def reconnect_backoff_max(self) -> float:
        return float(self._settings.get("reconnect.backoff.max.ms", 10000)) / 1000

    @property
    def static_member(self) -> bool:
        return self._settings.get("group.instance.id") is not None

    @property
    def connected(self) -> bool:
        return self._consumer is not None

    @property
    def join_answers(self) -> JoinAnswers:
        """Always empty: librdkafka runs the join itself and does not report its answers."""
        return JoinAnswers()

    # ------------------------------------------------------------ life cycle

    def connect(self, handler: RebalanceHandler) -> None:
        """Create the consumer and subscribe (librdkafka connects in the background)."""
        module = self._module
        config = {
            **self._settings,
            "statistics.interval.ms": _STATISTICS_MS,
            "stats_cb": self._on_statistics,
            "error_cb": self._on_error,
            "logger": librdkafka_log,
            "on_commit": self._commits.answered,
        }
        try:
            consumer = module.Consumer(config)
        except module.KafkaException as exc:
            raise ConfigurationRefused(str(kafka_error(exc.args[0]))) from exc
        self._handler, self._closing = handler, False
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._consumer = consumer

    def close(self, timeout: float | None) -> None:
        """Release every partition through the handler (drain and final commit, here on the poll
        greenlet), then close the consumer in the thread pool, waiting at most ``timeout`` seconds."""
        consumer = self._consumer
        if consumer is None:
            return
        started = time.monotonic()
        try:
            if self._assigned and self._handler is not None:
                self._release(set(self._assigned))
        finally:
            left = None if timeout is None else max(timeout - (time.monotonic() - started), 0.001)
            self._shut(consumer, left)

    def abandon(self, timeout: float) -> None:
        """Close the consumer without the drain, waiting at most ``timeout`` seconds."""
        consumer = self._consumer
        if consumer is not None:
            self._shut(consumer, timeout)

    def _shut(self, consumer: Any, timeout: float | None) -> None:
        """``consumer.close()`` in the thread pool: librdkafka's callbacks that close() still
        serves find ``_closing`` and do nothing (they run on that pool thread)."""
        self._closing, self._consumer = True, None
        self._commits.abandon()
        self._assigned.clear()
        self._holdback.clear()
        done = get_hub().threadpool.spawn(consumer.close)
        try:
            done.get(timeout=timeout)
        except gevent.Timeout:
            logger.warning("closing the librdkafka consumer took over %.1f s; leaving it to finish alone", timeout)
        except Exception:
            logger.warning("closing the librdkafka consumer failed", exc_info=True)

    # ------------------------------------------------------------ callbacks

    def _tps(self, partitions: list[Any]) -> set[TopicPartition]:
        return {TopicPartition(p.topic, p.partition) for p in partitions}

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        if self._closing or self._handler is None:
            return
        tps = self._tps(partitions)
        self._read_group_metadata(consumer)
        self._assigned |= tps
        self._assignments += 1
        self._settled_at = time.monotonic()
        if tps:
            self._handler.assigned(tps)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        tps = self._tps(partitions)
        if not self._closing:
            self._read_group_metadata(consumer)
        if not self._closing and tps & self._assigned:
            self._release(tps)
        self._forget_partitions(consumer, tps)

    def _release(self, tps: set[TopicPartition]) -> None:
        """Run the handler's release of ``tps`` (drain and final commit) to its end, here."""
        if self._handler is None:
            return
        self._releasing = True
        try:
            drive(self._handler.revoked(tps))
        finally:
            self._releasing = False
            self._settled_at = time.monotonic()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        tps = self._tps(partitions)
        self._losses += 1
        if not self._closing and self._handler is not None:
            self._handler.lost(tps & self._assigned)
        self._forget_partitions(consumer, tps)

    def _forget_partitions(self, consumer: Any, tps: set[TopicPartition]) -> None:
        """Drop what is kept of ``tps`` as they go; librdkafka keeps a partition's pause over its
        revocation, so those it has paused are resumed now (gkbroad starts them unpaused)."""
        self._assigned -= tps
        paused = self._holdback.forget(sorted(tps))
        if paused and not self._closing:
            try:
                consumer.resume(partition_list(self._module, paused))
            except self._module.KafkaException:
                logger.warning("resuming the partitions %s as they go failed", sorted(paused), exc_info=True)
        for tp in tps:
            self._positions.pop(tp, None)

    def _on_statistics(self, document: str) -> None:
        if not self._closing:
            self._stats.read(document)
            self._missing -= self._stats.topics

    def _on_error(self, error: Any) -> None:
        """librdkafka's error events: it logs each connection failure itself (through ``librdkafka_log``), so
        only "all brokers down" and fatal errors are said again here; the rest is for debugging."""
        if error.code() == _ALL_BROKERS_DOWN:
            self._stats.brokers_down = True
            level = logging.WARNING
        else:
            level = logging.ERROR if error.fatal() else logging.DEBUG
        librdkafka_log.log(level, "librdkafka: %s (%s)", error.str(), error.name())

    # ------------------------------------------------------------- fetching

    def _live(self) -> Any:
        consumer = self._consumer
        if consumer is None:
            raise LibrdkafkaError("the consumer is closed")
        return consumer

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        """{TopicPartition: [ConsumerRecord]}, waiting cooperatively up to ``timeout_ms``; raises PositionsLost."""
        consumer = self._live()
        if self._forget:
            self._rejoin(consumer)
        lost, self._positions_lost = self._positions_lost, None
        if lost is not None:
            raise lost
        commits, wake = self._commits, self._commits.wake
        ready = self._holdback.take_ready()
        if ready:  # alone: with a consume()'s worth on top, a resumed buffer could overflow
            commits.send(consumer, synchronously=False)
            return self._handed_out(ready)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            commits.send(consumer, synchronously=False)
            messages = consumer.consume(max_records, 0)
            if messages or self._consumer is None:
                break
            if time.monotonic() >= deadline:
                return {}
            wake.clear()
            wake.wait(self._idle)  # a queued commit ends the sleep
            self._idle = min(self._idle * 2, _IDLE_LONGEST)
        self._idle = _IDLE_FIRST
        self._read_group_metadata(consumer)
        records = as_records(messages)
        if len(records) < len(messages):
            self._errors(messages, bool(records))
        fetched, to_stop = self._holdback.hold(by_partition(records, self._names), max_records)
        if to_stop:
            consumer.pause(partition_list(self._module, to_stop))
        return self._handed_out(fetched)

    def _handed_out(self, fetched: dict[Any, Any]) -> dict[Any, list[Any]]:
        """``fetched``, once the positions say its records were polled."""
        for tp, run in fetched.items():
            self._positions[tp] = run[-1].offset + 1
        return fetched

    def _errors(self, messages: list[Any], with_records: bool) -> None:
        """Handle the error events among ``messages``; PositionsLost now, or at the next poll
        when records came with them (they must reach the buffers first)."""
        targets: dict[Any, int | None] = {}
        for message in messages:
            error = message.error()
            if error is None:
                continue
            code = error.code()
            if code == _AUTO_OFFSET_RESET:
                targets[TopicPartition(message.topic(), message.partition())] = None
            elif code in (_UNKNOWN_TOPIC, _UNKNOWN_TOPIC_OR_PART) and message.topic():
                self._missing.add(message.topic())
            elif code == _MAX_POLL_EXCEEDED:
                logger.warning("librdkafka left the group: %s", error.str())
            elif error.fatal():
                raise kafka_error(error)
            else:
                librdkafka_log.warning("librdkafka: %s (%s)", error.str(), error.name())
        if targets:
            lost = PositionsLost(targets, LibrdkafkaError("no usable committed offset"), "no usable committed offset")
            if not with_records:
                raise lost
            self._positions_lost = lost

    def _rejoin(self, consumer: Any) -> None:
        """forget_membership's rejoin: the held partitions are lost, then the member subscribes anew."""
        self._forget = False
        self._on_lost(consumer, partition_list(self._module, self._assigned))
        consumer.unsubscribe()
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def assignment(self) -> set[Any]:
        return set(self._assigned)

    def paused(self) -> set[Any]:
        """The partitions gkbroad paused (librdkafka may still be fetching them: rdkafka_holdback)."""
        return self._holdback.paused

    def pause(self, tps: Iterable[Any]) -> None:
        """Hold back what comes for ``tps`` from now on; librdkafka pauses them once a poll's worth is held."""
        self._live()
        self._holdback.pause(tps)

    def resume(self, tps: Iterable[Any]) -> None:
        """The next poll hands out what was held for ``tps``; librdkafka resumes those it had paused."""
        consumer = self._live()
        paused = self._holdback.resume(sorted(tps))
        if paused:
            consumer.resume(partition_list(self._module, paused))

    def seek(self, tp: Any, offset: int) -> None:
        """Move ``tp``'s fetch position; a partition librdkafka stopped (no usable committed offset)
        does not take a seek, so it is assigned again at ``offset``."""
        consumer = self._live()
        module = self._module
        try:
            consumer.seek(module.TopicPartition(tp.topic, tp.partition, offset))
        except module.KafkaException:
            self._assign_at(consumer, tp, offset)
        self._holdback.discard(tp)
        self._positions.pop(tp, None)

    def _assign_at(self, consumer: Any, tp: Any, offset: int) -> None:
        module = self._module
        at = module.TopicPartition(tp.topic, tp.partition, offset)
        if self._cooperative:
            consumer.incremental_unassign([module.TopicPartition(tp.topic, tp.partition)])
            consumer.incremental_assign([at])
        else:
            others = [p for p in consumer.position(partition_list(module, self._assigned - {tp}))]
            consumer.assign([*others, at])
        if self._holdback.stopped(tp):
            consumer.pause([module.TopicPartition(tp.topic, tp.partition)])

    def seek_to_beginning(self, tp: Any) -> None:
        self.seek(tp, self._module.OFFSET_BEGINNING)

    def seek_to_end(self, tp: Any) -> None:
        self.seek(tp, self._module.OFFSET_END)

    def offsets_for_times(self, tps: Iterable[Any], timestamp_ms: int) -> dict[Any, int | None]:
        """{tp: first offset at or after ``timestamp_ms``, None when none is that late}; looked up by an
        admin client in the thread pool (rdkafka_offsets says why), bounded by the request timeout."""
        self._live()
        return offsets_at_time(self._module, self._settings, list(tps), timestamp_ms, self.request_timeout)

    def fetch_state(self, tp: Any) -> tuple[int | None, int | None]:
        """(high watermark, fetch position): librdkafka's cached high watermark; the position after the
        last record polled, else as librdkafka's last statistics report said."""
        consumer = self._consumer
        highwater = None if consumer is None else cached_highwater(self._module, consumer, tp)
        position = self._positions.get(tp)
        return highwater, position if position is not None else self._stats.positions.get((tp.topic, tp.partition))

    # ------------------------------------------------------------- commits

    def commit(self, offsets: dict[Any, int], timeout: float | None = None) -> Future:
        """Queue a commit of {tp: last processed offset} for the poll greenlet (see rdkafka_commits);
        its future fails when no answer came within ``timeout`` (default: the request timeout) or the
        membership was lost before it was sent."""
        self._live()
        timeout = self.request_timeout if timeout is None else min(timeout, self.request_timeout)
        to_send = partition_list(self._module, offsets, lambda tp: offsets[tp] + 1)
        return self._commits.add(to_send, max(timeout, 0.001))

    def new_future(self) -> Future:
        return self._commits.watch(Future())

    def resolve_soon(self, future: Future, error: BaseException | None = None) -> None:
        """Resolve ``future`` from the hub's next callback round."""

        def resolve() -> None:
            if not future.is_done:
                future.success(None) if error is None else future.failure(error)

        get_hub().loop.run_callback(resolve)

    async def wait(self, future: Future, timeout: float | None) -> bool:
        """Wait for ``future`` while the partitions are released (the rebalance handler is the only
        waiter), sending the commits queued meanwhile synchronously; an asynchronous commit sent before
        the release counts as superseded and is not waited for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        commits = self._commits
        while True:
            if self._consumer is not None and self._releasing:
                commits.send(self._consumer, synchronously=True, refusal=self._stats.no_coordinator())
            if future.is_done:
                return True
            if commits.superseded(future):
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            commits.wake.clear()
            if not future.is_done:
                commits.wake.wait(remaining)

    def group_metadata(self) -> Any:
        """The member's group metadata (group, generation, member id) for a transaction's offsets, as
        the poll greenlet last read it; None before the first assignment. Any greenlet may ask."""
        return self._group_metadata

    def _read_group_metadata(self, consumer: Any) -> None:
        """Called by the poll greenlet only (``consumer_group_metadata`` is a consumer call)."""
        try:
            self._group_metadata = consumer.consumer_group_metadata()
        except self._module.KafkaException:
            logger.debug("librdkafka gave no group metadata", exc_info=True)

    # -------------------------------------------------------------- health

    def membership(self) -> tuple[str, int]:
        """(member state from librdkafka's statistics, assignments received): librdkafka does not
        tell the generation id, so the count of assignments stands in for it."""
        if self._consumer is None:
            return "unjoined", -1
        state = self._stats.member_state(self._assignments > 0)
        return state, (self._assignments if self._assignments else -1)

    def reachable(self) -> bool:
        """As librdkafka's statistics say (Statistics.reachable): creating the consumer connects nothing."""
        return self._consumer is not None and self._stats.reachable

    def missing_topics(self) -> list[str]:
        """Subscribed topics librdkafka said are unknown, until its statistics name them."""
        return sorted(self._missing & set(self._topics))

    def coordinator_silence(self) -> float | None:
        """Seconds since the group coordinator last answered (or the last assignment or release ended,
        if later), from librdkafka's statistics; None while the member holds no assignment.

        librdkafka heartbeats from its own threads, but learns that the coordinator went silent only
        at its own session timeout (then ``on_lost``), when the broker may have given the partitions
        away already; gkbroad's session fence acts before that, as for kafka-python."""
        answered = self._stats.coordinator_answered
        if self._consumer is None or not self._stats.steady or answered is None:
            return None
        return time.monotonic() - max(answered, self._settled_at)

    def forget_membership(self) -> None:
        self._losses += 1
        self._forget = True

    def on_refused_sync(self, choose: Callable[[JoinAnswers], str | None]) -> None:
        """Never called back: librdkafka runs the join and does not report refused SyncGroups."""
