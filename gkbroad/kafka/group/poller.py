"""Poller: the greenlet that alone drives the Kafka consumer.

kafka-python's consumer is not greenlet-safe and its group membership dies
if ``poll()`` is not called often enough, so one greenlet connects (retrying
while the cluster is unreachable), then polls in short rounds whatever the
handlers do, fills the GroupState's buffers and pauses/resumes partitions as
they fill and drain. On stop it keeps polling, with every partition paused,
until what was delivered is acknowledged and committed (bounded by the drain
timeout and the stop budget), then closes the client (which revokes every
partition through the rebalancer and leaves the group).

Where offsets start: kafka-python has one ``auto_offset_reset`` per consumer
but each topic has its own ``offset_reset_policy``, so the client is built
with ``auto_offset_reset="none"`` and the poller seeks the partitions the
client reports without a usable position as their topic's policy says: to
the beginning, to the end, or (a policy that is a timestamp) to the first
record at or after that time, looked up with offsets_for_times, and to the
end where no record is that late.

Every retry waits on the hub with a backoff, so no error path spins; what
the user must know (brokers unreachable, a subscribed topic missing) is said
in gkbroad's words, at most once per ``WARN_EVERY`` seconds while it lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gevent
from gevent.event import Event

from ..client import ConfigurationRefused, GroupClient, KafkaError, PositionsLost, RebalanceHandler, TopicPartition
from .grouplog import GroupLog, describe
from .membership import MembershipWatch
from .state import GroupState
from .timing import CONNECT_BACKOFF_MAX, POLL_BACKOFF_MAX, Backoff, Every, Shutdown

__all__ = ["Poller", "WARN_EVERY"]

logger = logging.getLogger(__name__)

# One poll waits at most this long, so the poller reacts quickly to drained
# buffers (resume) and to stop().
_POLL_TIMEOUT_MS = 100
WARN_EVERY = 30.0
# Connections drop and come back within a moment during normal operation
# (idle connections, leader moves); only a longer outage is reported.
_UNREACHABLE_AFTER = 2.0
_WATCH_EVERY = 0.5
# Metadata for a just-subscribed topic takes a round trip to arrive.
_MISSING_TOPIC_AFTER = 3.0
# What a stop leaves to the final commit and the leave after the drain.
_DRAIN_SHARE = 2 / 3


class Poller:
    """Runs the poll loop over ``state`` and ``client``.

    ``rebalancer`` is handed to the client as its rebalance handler;
    ``fence()`` (SessionFence.check) runs after every poll, before what it
    returned is buffered;
    ``on_failure(reason)`` is called when kafka-python refuses the
    configuration (the loop then ends). ``policies`` maps topics to their
    offset_reset_policy ("earliest", "latest", or ms since the epoch).
    """

    def __init__(
        self,
        state: GroupState,
        client: GroupClient[Any],
        rebalancer: RebalanceHandler,
        shutdown: Shutdown,
        *,
        group_name: str,
        policies: dict[str, str | int],
        drain_timeout_ms: int,
        stall_timeout: float,
        on_failure: Callable[[str], None],
        wake_committer: Callable[[], None],
        fence: Callable[[], bool],
    ):
        self._state = state
        self._client = client
        self._rebalancer = rebalancer
        self._shutdown = shutdown
        self._log = GroupLog(logger, group_name)
        self._policies = policies
        self._drain_timeout = drain_timeout_ms / 1000
        self._on_failure = on_failure
        self._wake_committer = wake_committer
        self._fence = fence  # the session fence's check, before what a poll returned is buffered
        self._new_records = Event()
        self._room = Event()  # set by the state when a pull leaves a paused buffer room to resume
        state.on_room = self._room.set
        self.last_poll: float | None = None  # time.monotonic() of the last completed poll
        self._unreachable_since: float | None = None
        self._said_unreachable = False
        self._last_watch = 0.0
        self._drain_deadline = 0.0  # set when a stop's drain begins
        self._unreachable_warning = Every(WARN_EVERY)
        self._missing_since: float | None = None
        self._said_missing = False
        self._missing_warning = Every(WARN_EVERY)
        self.membership = MembershipWatch(client, self._log, stall_timeout, WARN_EVERY)

    def unreachable_for(self) -> float | None:
        """Seconds the brokers have been out of reach (from the start until the first
        connection), None while one answers."""
        since = self._unreachable_since
        return None if since is None else time.monotonic() - since

    def wait_for_records(self, timeout: float) -> bool:
        """Block the calling greenlet until new records were buffered or
        ``timeout`` seconds passed; True if records arrived."""
        return self._new_records.wait(timeout)

    def run(self) -> None:
        """The poll greenlet's body: connect, poll until stop() asks, drain, close."""
        self._unreachable_since = time.monotonic()
        self.membership.begin()
        if not self._connect():
            return
        backoff = Backoff(POLL_BACKOFF_MAX)
        while not self._shutdown.requested:
            self._room.clear()
            self._apply_flow_control()
            full = self._state.nothing_to_fetch()
            if self._poll(backoff, 0 if full else _POLL_TIMEOUT_MS):
                # Buffered fetch data lets poll() return without any I/O;
                # yield so producers and heartbeats are never starved.
                gevent.sleep(0)
            elif full:
                # Every buffer is full (or paused by a handler): no poll brings records before a pull makes
                # room, and poll() would only notice that at its timeout, with the handlers running dry
                # meanwhile. So the wait is here, woken by that pull, and bounded like a poll.
                self._room.wait(_POLL_TIMEOUT_MS / 1000)
            self._watch_cluster()
        self._flush()
        self._close()

    # ------------------------------------------------------------ connecting

    def _connect(self) -> bool:
        """Connect and subscribe, retrying while the cluster is unreachable.

        kafka-python's bootstrap keeps trying for its whole bootstrap timeout
        (30 s by default) before it gives up, so the warning does not wait for
        that: it comes once the first attempts went unanswered."""
        self._log.info(
            "joining the group at %s (the first assignment takes a few seconds; on the bundled broker about "
            "half of session_timeout_ms, %.0f s)",
            self._client.bootstrap_servers,
            self._client.session_timeout / 2,
        )
        backoff = Backoff(CONNECT_BACKOFF_MAX)
        while not self._shutdown.requested:
            unanswered = gevent.spawn_later(
                _UNREACHABLE_AFTER, self._unreachable, "no answer to the bootstrap yet", CONNECT_BACKOFF_MAX
            )
            try:
                self._client.connect(self._rebalancer)
            except ConfigurationRefused as exc:
                self._log.error("kafka-python refused the configuration: %s", exc)
                self._on_failure(f"kafka-python refused the configuration: {exc}")
                return False
            except Exception as exc:
                detail = str(exc) if isinstance(exc, KafkaError) else f"{type(exc).__name__}: {exc}"
                self._unreachable(detail, CONNECT_BACKOFF_MAX)
                self._shutdown.wait(backoff.next())
                continue
            finally:
                unanswered.kill(block=False)
            if self._client.reachable():  # librdkafka connects after connect() returned: the watch says when
                self._reachable()
            return True
        return False

    def _unreachable(self, detail: str, retry_every: float) -> None:
        if self._unreachable_warning.due():
            self._said_unreachable = True
            self._log.warning(
                "cannot reach the Kafka brokers at %s (%s); retrying at least every %.0f s",
                self._client.bootstrap_servers,
                detail,
                retry_every,
            )

    def _reachable(self) -> None:
        if self._said_unreachable:
            self._log.info("the Kafka brokers at %s are reachable again", self._client.bootstrap_servers)
        self._said_unreachable = False
        self._unreachable_since = None
        self._unreachable_warning.reset()

    def _watch_cluster(self) -> None:
        """Say when the brokers stop answering, a subscribed topic is missing or
        the member stays out of a stable generation."""
        now = time.monotonic()
        if now - self._last_watch < _WATCH_EVERY:
            return
        self._last_watch = now
        self.membership.check(now)
        if self._client.reachable():
            if self._unreachable_since is not None:
                self._reachable()
        else:
            if self._unreachable_since is None:
                self._unreachable_since = now
            elif now - self._unreachable_since >= _UNREACHABLE_AFTER:
                self._unreachable(
                    f"no connection for {now - self._unreachable_since:.0f} s", self._client.reconnect_backoff_max
                )
        missing = self._client.missing_topics()
        if not missing:
            if self._said_missing:
                self._log.info("the subscribed topics exist now")
            self._said_missing = False
            self._missing_since = None
            self._missing_warning.reset()
        elif self._missing_since is None:
            self._missing_since = now
        elif now - self._missing_since >= _MISSING_TOPIC_AFTER and self._missing_warning.due():
            self._said_missing = True
            self._log.warning(
                "subscribed topic(s) %s do not exist; nothing is consumed from them until they are created",
                ", ".join(missing),
            )

    # --------------------------------------------------------------- polling

    def _poll(self, backoff: Backoff, timeout_ms: int = _POLL_TIMEOUT_MS) -> bool:
        """One poll() round; True if records arrived. Trouble is logged and
        followed by a wait (backoff), so a failing round never repeats at once."""
        try:
            fetched = self._client.poll(timeout_ms, self._state.poll_batch)
        except PositionsLost as exc:
            if self._reset_positions(exc):
                backoff.reset()
                return False
            delay = backoff.next()
            self._log.warning("poll found no usable position (%s); retrying in %.1fs", exc, delay)
            self._retry_after(delay)
            return False
        except Exception as exc:
            self._fence()
            delay = backoff.next()
            self._log.warning(
                "poll failed (%s: %s); retrying in %.1fs",
                type(exc).__name__,
                exc,
                delay,
                exc_info=not isinstance(exc, KafkaError),
            )
            self._retry_after(delay)
            return False
        self.last_poll = time.monotonic()
        backoff.reset()
        self._fence()
        arrived, rewound = self._state.buffer(fetched)
        for tp, first_kept in rewound:
            self._log.warning("%s: dropping re-fetched records below offset %d (log truncated)", tp, first_kept)
        if arrived:
            waiters, self._new_records = self._new_records, Event()
            waiters.set()
        return arrived

    def _retry_after(self, delay: float) -> None:
        """Wait before retrying a poll: until a stop is requested while
        running; during the stop's drain, the delay itself (but not past the
        drain's end), so that a failing poll never repeats at once."""
        if not self._shutdown.requested:
            self._shutdown.wait(delay)
        else:
            gevent.sleep(max(min(delay, self._drain_deadline - time.monotonic()), 0.0))

    def _apply_flow_control(self) -> None:
        """Move rewound partitions (a handler's pause) to their offset, end the pauses that are
        over, then pause and resume fetching as the buffers and the pauses say."""
        assigned = self._client.assignment()
        for tp, offset in self._state.take_seeks():
            if tp in assigned:
                self._client.seek(tp, offset)
        for tp in self._state.end_holds(time.monotonic()):
            self._log.info("%s:%d: the handler's pause ended; reading again", tp.topic, tp.partition)
        to_pause, to_resume = self._state.flow_control(self._client.paused(), assigned)
        if to_pause:
            self._client.pause(to_pause)
        if to_resume:
            self._client.resume(to_resume)

    def _reset_positions(self, exc: PositionsLost) -> bool:
        """Seek partitions without a usable position as the broker or their
        topic's offset_reset_policy says; True if any was moved."""
        assigned = self._client.assignment()
        by_policy: dict[str | int, list[TopicPartition]] = {}
        moved = False
        for tp, offset in exc.targets.items():
            if tp not in assigned:
                continue
            if offset is not None:
                self._log.warning("%s:%d: log truncated; resuming at offset %d", tp.topic, tp.partition, offset)
                self._client.seek(tp, offset)
                moved = True
            else:
                by_policy.setdefault(self._policies[tp.topic], []).append(tp)
        for policy, tps in by_policy.items():
            if policy == "earliest":
                for tp in tps:
                    self._client.seek_to_beginning(tp)
                self._log.info("%s: %s; starting from the earliest offset", describe(tps), exc.reason)
            elif policy == "latest":
                for tp in tps:
                    self._client.seek_to_end(tp)
                self._log.info("%s: %s; starting from the latest offset", describe(tps), exc.reason)
            elif not self._seek_to_time(tps, int(policy), exc.reason):
                continue
            moved = True
        return moved

    def _seek_to_time(self, tps: list[TopicPartition], timestamp_ms: int, reason: str) -> bool:
        """Seek to the first record at or after ``timestamp_ms``; to the end where there is none.
        False when the lookup failed (the poll's next PositionsLost retries it after a backoff)."""
        try:
            found = self._client.offsets_for_times(tps, timestamp_ms)
        except Exception as exc:
            self._log.warning(
                "%s: looking up the offsets at %d ms since the epoch failed (%s: %s)",
                describe(tps),
                timestamp_ms,
                type(exc).__name__,
                exc,
            )
            return False
        after_last = []
        for tp in tps:
            offset = found.get(tp)
            if offset is None:
                after_last.append(tp)
                self._client.seek_to_end(tp)
            else:
                self._client.seek(tp, offset)
        self._log.info(
            "%s: %s; starting from the first record at or after %s%s",
            describe(tps),
            reason,
            datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds"),
            f" (none in {describe(after_last)}: starting from the end there)" if after_last else "",
        )
        return True

    # -------------------------------------------------------------- stopping

    def _flush(self) -> None:
        """Stop pulls, then keep polling (so the membership and any rebalance
        go on) until every delivered record was acknowledged and committed,
        for at most the drain timeout and part of the stop budget."""
        self._state.drop_buffers()
        self._wake_committer()  # closing: what waits for its commit interval goes now
        budget = self._shutdown.remaining()
        limit = self._drain_timeout if budget is None else min(self._drain_timeout, budget * _DRAIN_SHARE)
        deadline = self._drain_deadline = time.monotonic() + limit
        backoff = Backoff(POLL_BACKOFF_MAX)
        while self._state.unsettled() and time.monotonic() < deadline:
            assigned = self._client.assignment()
            if assigned:
                self._client.pause(assigned)  # nothing more is fetched
            self._poll(backoff)
        if self._state.unsettled():
            self._log.warning(
                "stop: leaving with unsettled partitions after %.1f s: %s", limit, self._unsettled_summary()
            )

    def _unsettled_summary(self) -> str:
        parts = []
        for tp, state in sorted(self._state.partitions.items()):
            pending = self._state.pending(tp)
            if pending or state.uncommitted():
                parts.append(
                    f"{tp.topic}:{tp.partition} ({pending} unacknowledged, acked {state.acked}, "
                    f"committed {state.committed})"
                )
        return ", ".join(parts)

    def _close(self) -> None:
        """Leave the group: the client revokes every partition (the
        rebalancer commits what it can) and closes."""
        budget = self._shutdown.remaining()
        try:
            # The leave gets a third of what is left; the revocation's final
            # commit bounds itself by the stop budget.
            self._client.close(None if budget is None else budget / 3)
        except Exception:
            self._log.exception("closing the consumer failed")
            return
        if self._client.static_member:  # kafka-python sends no LeaveGroup for static members
            self._log.info("closed; as a static member it keeps its partitions until the session times out")
        else:
            self._log.info("left the group")
