"""ConsumerGroup: one Kafka consumer-group membership shared by a pipeline's
producer greenlets.

It wires four parts around one GroupState (the per-partition facts): the
ConsumerClient (the only door into kafka-python), the Poller (the one
greenlet that drives the client and fills the buffers), the Committer
(greenlets that send committable offsets) and the Rebalancer (drains and
commits revoked partitions before they are given up). What remains here is
the producer-facing API, the service life cycle (start, supervise, stop) and
the two user callbacks. Its options were validated by gkbroad.kafka.options
and are translated to kafka-python settings by gkbroad.kafka.group.settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
from gevent.event import AsyncResult

from ...errors import ConfigError
from ..client import (
    CONSUMER_DEFAULTS,
    LIBRDKAFKA_POLL_INTERVAL_MS,
    CommitFuture,
    ConsumerClient,
    GroupClient,
    LibrdkafkaClient,
    TopicPartition,
    WriterConnection,
)
from .committer import Committer
from .grouplog import GroupLog
from .poller import Poller
from .rebalancer import Rebalancer
from .session_fence import SessionFence, warn_on_slow_requests
from .settings import GroupSettings
from .state import GroupState
from .timing import Shutdown

__all__ = ["ConsumerGroup"]

logger = logging.getLogger(__name__)


class ConsumerGroup:
    """One consumer-group membership: buffers, pull/ack/commit, rebalances.

    The Producer builds it (``from_options``) from options that
    gkbroad.kafka.options.KafkaProducerOptions validated and completed with
    defaults, and the group takes them as they are, without checking them
    again: whoever builds one directly (tests) must validate first, e.g.
    ``ConsumerGroup.from_options(validate(KafkaProducerOptions, {...}))``.

    Subclass it to carry kafka-python connection settings in the ``client``
    class attribute (used when the ``client`` option is None) and to define
    ``handle_consumer_start`` / ``handle_consumer_stop``. Those callbacks run
    on kafka-python's I/O loop while the group rebalances, so keep them
    short; their exceptions are logged and otherwise ignored.

    ``settings`` (a `GroupSettings`) holds the group's options, each named
    once; see there how they become kafka-python settings. Keep
    ``drain_timeout`` below the rebalance timeout. ``commit_interval``
    spaces the commits of each partition (see GroupState). Times are in
    milliseconds except the ``timeout`` arguments, in seconds.
    ``consumer_client`` replaces the kafka-python client (unit tests pass an
    in-memory fake).
    """

    client: dict[str, Any] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], consumer_client: GroupClient[Any] | None = None) -> ConsumerGroup:
        """Build the group from validated KafkaProducerOptions (see the class
        docstring); options the group does not use are ignored.
        ``consumer_client`` replaces kafka-python (the unit tests' fake)."""
        return cls(GroupSettings.from_options(options), consumer_client=consumer_client)

    def __init__(self, settings: GroupSettings, consumer_client: GroupClient[Any] | None = None):
        self.settings = settings
        self.group_name = group_name = settings.group_name
        self.topics = settings.topic_configs()
        self.failure: str | None = None  # why the group can no longer work
        drain_timeout = settings.drain_timeout
        connection = settings.client if settings.client is not None else self.client
        if connection is None:
            raise ConfigError(
                f"consumer group {group_name}: no kafka-python settings (a `client` option or class attribute)"
            )
        # The connection settings in use: the `client` option, else the class attribute.
        self.connection: Mapping[str, Any] = connection
        # What the writers (dead letters, outputs, the retry topic) connect with, through the same library.
        self.writer_connection = WriterConnection(settings.client_library, connection)
        self._log = GroupLog(logger, group_name)
        # kafka-python's settings (None with librdkafka, whose own the client keeps).
        self._kafka_settings: dict[str, Any] | None = None
        if consumer_client is None and settings.client_library == "librdkafka":
            librdkafka = settings.librdkafka_settings(connection)
            self._rebalance_timeout = librdkafka.get("max.poll.interval.ms", LIBRDKAFKA_POLL_INTERVAL_MS) / 1000
            self._client: GroupClient[Any] = LibrdkafkaClient(librdkafka, self.topics)
            session_timeout = self._client.session_timeout
        else:
            kafka = self._kafka_settings = settings.kafka_settings(connection)
            self._rebalance_timeout = (
                kafka.get("max_poll_interval_ms", CONSUMER_DEFAULTS["max_poll_interval_ms"]) / 1000
            )
            self._client = consumer_client if consumer_client is not None else ConsumerClient(kafka, self.topics)
            session_timeout = kafka.get("session_timeout_ms", CONSUMER_DEFAULTS["session_timeout_ms"]) / 1000
        self._state = GroupState(
            {name: t["max_buffer_records"] for name, t in self.topics.items()},
            settings.poll_batch(),
            settings.commit_interval / 1000,
        )
        self._shutdown = Shutdown()
        self._committer = Committer(self._state, self._client, group_name, settings.committers_count)
        self._rebalancer = Rebalancer(
            self._state,
            self._client,
            self._committer,
            self._shutdown,
            callbacks=self,
            group_name=group_name,
            drain_timeout_ms=drain_timeout,
        )
        self._fence = SessionFence(
            self._client,
            session_timeout,
            held=lambda: set(self._state.partitions),
            lose=self._rebalancer.lost,
            group_name=group_name,
        )
        self._poller = Poller(
            self._state,
            self._client,
            self._rebalancer,
            self._shutdown,
            group_name=group_name,
            policies={name: t["offset_reset_policy"] for name, t in self.topics.items()},
            drain_timeout_ms=drain_timeout,
            stall_timeout=settings.stall_timeout(),
            on_failure=self._fail,
            wake_committer=self._committer.wake,
            fence=self._fence.check,
        )
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._report: Callable[[str], None] | None = None
        self._stopped: AsyncResult[bool] = AsyncResult()  # stop()'s result

    # --------------------------------------------------------------- callbacks

    def handle_consumer_start(self, topic: str, partition: int, group_name: str) -> None:
        """Called when ``(topic, partition)`` was assigned to this member."""

    def handle_consumer_stop(self, topic: str, partition: int, group_name: str, reason: str) -> None:
        """Called when ``(topic, partition)`` was released; ``reason`` is
        "revoked" (rebalance, after drain and commit), "lost" (the membership
        was lost, nothing committed) or "shutdown" (stop())."""

    # ----------------------------------------------------------------- service

    def supervise(self, report: Callable[[str], None]) -> None:
        """Call ``report(reason)`` once if the group can no longer work: its
        poll loop or a committer died, or kafka-python refused the settings."""
        self._report = report
        if self.failure is not None:
            report(self.failure)

    def report_commits(self, observer: Callable[[float, list[tuple[str, int]]], None]) -> None:
        """Call ``observer(seconds, [(topic, partition), ...])`` after each
        successful offset commit (the pipeline passes its hooks' after_commit)."""
        self._committer.on_commit = observer

    def report_rebalances(self, observer: Callable[[str, int, str], None]) -> None:
        """Call ``observer(topic, partition, reason)`` each time a partition is assigned ("assigned") or
        given up ("revoked", "lost", "shutdown"; the pipeline passes its hooks' after_rebalance)."""
        self._rebalancer.on_change = observer

    def commit_through(self, commit: Callable[[dict[Any, int], float | None], CommitFuture]) -> None:
        """Send every offset commit through ``commit(offsets, timeout) -> future`` instead of the
        client's own (the exactly-once writer makes each one a transaction). Call before start."""
        self._committer.commit_offsets = commit

    def start(self) -> None:
        """Spawn the poll greenlet (which connects) and the committers; returns at once."""
        if self._greenlets:
            return
        if self._kafka_settings is not None:
            warn_on_slow_requests(self._kafka_settings, self._log)  # at start, so that `gkbroad check` stays quiet
        poller = gevent.spawn(self._poller.run)
        poller.link_exception(lambda g: self._died("the poll loop", g))
        self._greenlets = [poller]
        for committer in self._committer.start():
            committer.link_exception(lambda g: self._died("a committer", g))
            self._greenlets.append(committer)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop pulls, keep the membership until every delivered record was
        acknowledged and committed (at most ``drain_timeout``), then leave the
        group, calling ``handle_consumer_stop(..., "shutdown")`` per partition.
        Leaving lets the others rebalance at once.

        Returns within ``timeout`` seconds (None: no limit) whatever the
        brokers do: every wait inside takes what is left of it. Returns True
        only when everything acknowledged was committed and the group shut
        down cleanly; otherwise logs how many acknowledged records will be
        read again and returns False.
        """
        if self._shutdown.requested:  # stopped, or being stopped by another greenlet
            return bool(self._stopped.wait(timeout))
        self._shutdown.request(timeout)
        earlier = len(self._state.unsaved)  # given up by rebalances before the stop (logged then)
        clean = self._stop_poller(timeout)
        self._committer.stop()
        committers = self._greenlets[1:]
        done = gevent.joinall(committers, timeout=self._shutdown.remaining())
        late = [g for g in committers if g not in done]
        if late:
            gevent.killall(late, block=False)
            clean = False
        unsaved = self._state.unsaved[earlier:] + self._state.uncommitted_now()
        if unsaved:
            self._log.warning(
                "stop: %d acknowledged record(s) could not be committed and will be read again: %s",
                sum(item.records for item in unsaved),
                ", ".join(f"{u.tp.topic}:{u.tp.partition} offsets {u.first}..{u.last}" for u in unsaved),
            )
        result = clean and not unsaved and self.failure is None
        self._stopped.set(result)
        return result

    def _stop_poller(self, timeout: float | None) -> bool:
        """Let the poll loop drain and close within the budget; True if it did."""
        if not self._greenlets:
            return True
        poller = self._greenlets[0]
        if timeout is None:
            poller.join()
        else:
            # Kept back to abandon the client if the poll loop overruns.
            margin = min(0.5, timeout / 10)
            poller.join(max(self._shutdown.remaining(timeout) - margin, 0.0))
            if not poller.dead:
                self._log.warning("stop: the stop budget of %.1f s is spent; abandoning the consumer", timeout)
                poller.kill(block=False)
                self._client.abandon(margin / 2)
                return False
        if self._client.connected:  # the poll loop died before closing the client
            try:
                left = self._shutdown.remaining()
                self._client.close(None if left is None else left / 3)
            except Exception:
                self._log.exception("closing the consumer failed")
                return False
        return poller.successful()

    def _died(self, what: str, greenlet: gevent.Greenlet[[], None]) -> None:
        self._log.error("%s died", what, exc_info=greenlet.exc_info)
        self._fail(f"{what} of consumer group {self.group_name} died: {greenlet.exception!r}")

    def _fail(self, reason: str) -> None:
        if self.failure is not None:
            return
        self.failure = reason
        if self._report is not None:
            self._report(reason)

    @property
    def greenlets(self) -> tuple[gevent.Greenlet[[], None], ...]:
        """The group's running greenlets: the poll loop first, then the committers (empty before start).

        Read-only, for supervision tools and tests; ``supervise`` reports their deaths.
        """
        return tuple(self._greenlets)

    @property
    def consumer_client(self) -> GroupClient[Any]:
        """The Kafka client the group drives (a ``ConsumerClient``, or the one passed in), read-only."""
        return self._client

    # --------------------------------------------------------- producer side

    def assigned_partitions(self) -> list[tuple[str, int]]:
        """``(topic, partition)`` pairs that can be pulled now."""
        return self._state.pullable()

    def pull(self, topic: str, partition: int, max_records: int) -> tuple[int, list[Any]]:
        """Take up to ``max_records`` buffered records of the partition.

        Returns ``(epoch, records)``: records in offset order, registered as
        delivered; ``epoch`` identifies this assignment of the partition and
        must come back with each ack.
        """
        return self._state.pull((topic, partition), max_records)

    def in_flight(self, topic: str, partition: int) -> int:
        """Records of the partition pulled and neither acknowledged nor withdrawn yet."""
        return self._state.pending((topic, partition))

    def ack(self, acks: Iterable[tuple[str, int, int, int]]) -> None:
        """Acknowledge ``(topic, partition, offset, epoch)`` tuples, successful
        or failed alike. Acks from an earlier epoch of a partition (before it
        was reassigned) or for partitions no longer held are ignored."""
        if self._state.ack(acks):
            self._committer.wake()
            self._rebalancer.acks_arrived()

    def withdraw(self, acks: Iterable[tuple[str, int, int, int]]) -> None:
        """``(topic, partition, offset, epoch)`` of delivered records that will
        not be acknowledged in this epoch: drains and the stop stop waiting
        for them, and no commit of their partition passes them."""
        self._state.withdraw(acks)
        self._rebalancer.acks_arrived()

    def is_current(self, topic: str, partition: int, epoch: int, offset: int | None = None) -> bool:
        """True while ``(topic, partition)`` is held in ``epoch`` (a partition
        being drained is still held). A message of another epoch, or of a
        partition given up since it was pulled, is stale: its next owner
        reads it again. So is one at or after an ``offset`` a handler paused
        the partition at since: it is read again after the pause."""
        return self._state.is_current((topic, partition), epoch, offset)

    def stale_check(self) -> Callable[[tuple[str, int, int, int]], bool]:
        """``is_stale(data)`` for a record's acknowledger data ``(topic, partition, offset, epoch)``:
        not is_current, in one call (what the Kafka producer hands the processors, see its stale_check)."""
        return self._state.is_stale

    def pause_partition(
        self, topic: str, partition: int, offset: int, epoch: int, seconds: float | None, reason: str
    ) -> bool:
        """A handler paused ``(topic, partition)`` at the record ``offset`` pulled in ``epoch``:
        no record of it is handed out for ``seconds`` (None: until ``resume_partition``), then
        reading starts again at ``offset``. Records pulled from ``offset`` on are stale meanwhile.
        The partition stays assigned and its earlier offsets are committed as usual. False when
        that record is stale already (nothing changes)."""
        until = float("inf") if seconds is None else time.monotonic() + seconds
        if not self._state.rewind(TopicPartition(topic, partition), epoch, offset, until, reason):
            return False
        self._log.info(
            "%s:%d: paused at offset %d by a handler %s%s",
            topic,
            partition,
            offset,
            "until resumed" if seconds is None else f"for {seconds:.1f} s",
            f" ({reason})" if reason else "",
        )
        return True

    def resume_partition(self, topic: str, partition: int) -> bool:
        """End a handler's pause of ``(topic, partition)`` now; False when it was not paused."""
        return self._state.resume(TopicPartition(topic, partition))

    def wait_for_records(self, timeout: float) -> bool:
        """Block the calling greenlet until new records were buffered or
        ``timeout`` seconds passed; True if records arrived."""
        return self._poller.wait_for_records(timeout)

    def stats(self) -> dict[str, Any]:
        """A small snapshot for progress reports and health checks.

        Per partition: ``buffered`` records; ``pending`` acks; ``committed``,
        the offset Kafka stores for the group (last processed + 1; None until
        the first commit of this assignment); ``position``, the next offset to
        be buffered; ``highwater``, the end offset the fetcher last saw;
        ``lag`` (highwater - committed); ``paused`` (fetching is paused: a full
        buffer or a handler's pause); ``pause``, a handler's pause:
        ``{"until": Unix time in seconds, or None until resumed, "reason"}``, else
        None; ``epoch``. None marks
        what is not known yet. ``last_poll_age``: seconds since the poll loop
        last completed a poll (None before the first); ``rebalance_timeout``:
        seconds kafka-python allows between polls. ``member_state``
        ("unjoined", "rebalancing" or "stable") and ``generation`` as the poll
        loop last read them; ``unstable_for``: seconds out of a stable
        generation and ``unreachable_for``: seconds without a broker (None
        while in one, or connected); ``stall_timeout``: the limit of both
        (see MembershipWatch); ``stopping``: stop() was called;
        ``session_fenced``: True while the member gave its partitions up because the
        group coordinator did not answer (see session_fence), until it rejoins.
        """
        state = self._state
        partitions = {}
        now = time.monotonic()
        for tp, held in state.partitions.items():
            committed = held.committed + 1 if held.committed is not None else None
            highwater, fetch_position = self._client.fetch_state(tp)
            partitions[(tp.topic, tp.partition)] = {
                "buffered": len(held.records),
                "pending": state.pending(tp),
                "committed": committed,
                "position": held.last_buffered + 1 if held.last_buffered >= 0 else fetch_position,
                "highwater": highwater,
                "lag": highwater - committed if highwater is not None and committed is not None else None,
                "paused": held.paused,
                "pause": _pause_stats(held.held_until, held.hold_reason, now),
                "epoch": held.epoch,
            }
        last_poll = self._poller.last_poll
        membership = self._poller.membership
        return {
            "group": self.group_name,
            "assigned": self.assigned_partitions(),
            "partitions": partitions,
            "failure": self.failure,
            "last_poll_age": None if last_poll is None else time.monotonic() - last_poll,
            "rebalance_timeout": self._rebalance_timeout,
            "member_state": membership.state,
            "generation": membership.generation,
            "unstable_for": membership.unstable_for(),
            "unreachable_for": self._poller.unreachable_for(),
            "stall_timeout": membership.stall_timeout,
            "stopping": self._shutdown.requested,
            "session_fenced": self._fence.fenced,
        }


def _pause_stats(until: float | None, reason: str, now: float) -> dict[str, Any] | None:
    """A handler's pause for stats(): its end as Unix time (None: until resumed) and its reason."""
    if until is None:
        return None
    return {"until": None if until == float("inf") else time.time() + (until - now), "reason": reason}
