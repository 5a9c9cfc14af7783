"""ConsumerClient: the consumer group's one door into kafka-python.

Everything the group needs from kafka-python goes through this class, so
that the group's logic talks to a small surface, the ``GroupClient`` Protocol
of group_client.py (unit tests put an in-memory fake in its place,
tests/helpers/fake_kafka.py), and so that a kafka-python upgrade only has to be
checked here.

What it does: builds the ``KafkaConsumer`` in two steps (``__init__`` starts
kafka-python's I/O thread before it bootstraps, so a half-built consumer must
still be closed), subscribes with a rebalance listener, polls (with the
Fetcher fix, see fetcher_fix), pauses/resumes/seeks (to an offset or a point in time), commits asynchronously
through kafka-python's I/O loop and returns the commit's future, waits for
futures on that loop with a timeout, reads fetch positions and high
watermarks, says whether any broker connection is up and which subscribed
topics the cluster does not know, where the member stands in the group (its
member state and generation, and what the JoinGroup and SyncGroup answers said
since it was last in a stable generation), and closes (or, past the stop
budget, abandons) the consumer.

kafka-python private names used, checked against kafka-python 3.0.12
(``PRIVATE_NAMES``; tests/unit/test_kafka_client.py fails when one
disappears from the installed kafka-python):

- ``KafkaConsumer._client``: closing a half-built consumer, abandoning one.
- ``KafkaConsumer._manager``: ``call_soon`` (run the commit on the I/O loop)
  and ``wait_for`` (await a future with a timeout on that loop).
- ``KafkaConsumer._net``: ``call_soon_threadsafe`` (wake the loop) and
  ``stop`` (end the I/O loop when the stop budget is spent).
- ``KafkaConsumer._coordinator``: its heartbeat, generation and assignors
  (session.py), and one OffsetCommit attempt, which session.py retries (the
  public ``commit_async`` returns a coordinator-lookup future instead of the
  commit's while the coordinator is unknown).
- ``KafkaConsumer._subscription``: per-partition fetch position and high
  watermark, read without I/O.
- ``KafkaConsumer._fetcher``: ``_next_partition_records`` (fetcher_fix).
- ``KafkaConsumer._cluster``: the topics the last metadata response named.
- ``ConsumerCoordinator._process_join_group_response`` and
  ``_process_sync_group_response``: wrapped per consumer to note the leader
  each JoinGroup answer names and count SyncGroup answers of
  REBALANCE_IN_PROGRESS (kafka-python keeps neither), and to send a JoinGroup
  under another member id then (``on_refused_sync``, through the coordinator's
  ``_manager``); see gkbroad.kafka.group.membership.
- ``KafkaConnectionManager._conns``: whether any broker connection is up.
- ``Heartbeat.last_receive``, ``Heartbeat.last_reset``,
  ``BaseCoordinator.reset_generation``,
  ``ConsumerCoordinator._send_offset_commit_request``,
  ``ConsumerCoordinator._assignors`` and
  ``StickyPartitionAssignor.member_assignment``: see session.py, where they
  are used.
- ``KafkaAdminClient._process_acl_operations``: overridden by admin.py for
  the command line (the package's ``PRIVATE_NAMES`` adds it to these).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import kafka.errors as Errors
from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.future import Future
from kafka.net.manager import KafkaConnectionManager
from kafka.protocol.consumer import JoinGroupRequest
from kafka.structs import MemberState, OffsetAndMetadata, TopicPartition

from . import session
from .fetcher_fix import release_exhausted_batch
from .gevent_check import check_gevent_patched
from .group_client import JoinAnswers, RebalanceHandler

__all__ = [
    "ASSIGNORS",
    "CONSUMER_DEFAULTS",
    "PARTITION_FETCH_BYTES",
    "KAFKA_PYTHON_CHECKED",
    "PRIVATE_NAMES",
    "REBALANCE_ERRORS",
    "ConfigurationRefused",
    "ConsumerClient",
    "KafkaError",
    "PositionsLost",
    "TopicPartition",
    "offset_found",
]

logger = logging.getLogger(__name__)

KAFKA_PYTHON_CHECKED = ("3.0.12",)

# (class, attribute): every private name of kafka-python this module uses.
PRIVATE_NAMES = (
    (KafkaConsumer, "_client"),
    (KafkaConsumer, "_manager"),
    (KafkaConsumer, "_net"),
    (KafkaConsumer, "_coordinator"),
    (KafkaConsumer, "_subscription"),
    (KafkaConsumer, "_fetcher"),
    (KafkaConsumer, "_cluster"),
    (ConsumerCoordinator, "_process_join_group_response"),
    (ConsumerCoordinator, "_process_sync_group_response"),
    (ConsumerCoordinator, "_manager"),
    (Fetcher, "_next_partition_records"),
    (KafkaConnectionManager, "_conns"),
    *session.PRIVATE_NAMES,
)

# partition_assignment_strategy option -> kafka-python assignor.
ASSIGNORS = {
    "cooperative-sticky": CooperativeStickyAssignor,
    "sticky": StickyPartitionAssignor,
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
}

# kafka-python's KafkaConsumer settings and their defaults.
CONSUMER_DEFAULTS = KafkaConsumer.DEFAULT_CONFIG

# gkbroad's default for kafka-python's max_partition_fetch_bytes (kafka-python's own is 1 MiB), when no
# topic sets fetch_max_bytes: a pipeline runs in every web worker, and a fetch's data is most of its memory
# (see docs/performance.md for what smaller fetches cost).
PARTITION_FETCH_BYTES = 256 * 1024

KafkaError = Errors.KafkaError

# Commit errors that only mean "the group is rebalancing, try again later".
REBALANCE_ERRORS = (
    Errors.RebalanceInProgressError,
    Errors.CommitFailedError,
    Errors.IllegalGenerationError,
    Errors.UnknownMemberIdError,
)


# kafka-python's MemberState -> gkbroad's word for it (status pages, logs).
MEMBER_STATES = {MemberState.UNJOINED: "unjoined", MemberState.REBALANCING: "rebalancing", MemberState.STABLE: "stable"}


def _send_stand_in_join(coordinator: ConsumerCoordinator, member_id: str) -> None:
    """Send one JoinGroup as kafka-python would, but under ``member_id``, and
    ignore its answer (runs on the I/O loop, as the coordinator's own sends)."""
    request = JoinGroupRequest(
        group_id=coordinator.group_id,
        session_timeout_ms=coordinator.config["session_timeout_ms"],
        rebalance_timeout_ms=coordinator.config["max_poll_interval_ms"],
        member_id=member_id,
        group_instance_id=None,
        protocol_type=coordinator.protocol_type(),
        protocols=coordinator.group_protocols(),
        max_version=7,
    )
    sent = coordinator._manager.send(
        request,
        node_id=coordinator.coordinator_id,
        request_timeout_ms=coordinator.config["max_poll_interval_ms"] + 5000,
    )
    sent.add_errback(lambda exc: logger.debug("the stand-in JoinGroup for %s failed: %s", member_id, exc))


def offset_found(answer: Any) -> int | None:
    """The offset of one offsets_for_times answer, None for "no record at or after that time".

    A real Kafka says so with offset -1 (kafka-python then gives None); the bundled
    Tansu answers offset 0 with timestamp -1 instead: both read as None."""
    if answer is None or answer.offset < 0 or answer.timestamp is None or answer.timestamp < 0:
        return None
    offset: int = answer.offset
    return offset


class ConfigurationRefused(Exception):
    """kafka-python refused the consumer settings; retrying cannot help."""


class PositionsLost(Exception):
    """poll() found partitions without a usable position.

    ``targets`` maps each to the offset to resume at when the broker says
    (a log truncation), or None when the topic's offset_reset_policy decides
    (no committed offset, or it is out of range). ``reason`` says which, in
    words for the log.
    """

    def __init__(self, targets: dict[Any, int | None], cause: Exception, reason: str):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.targets = targets
        self.cause = cause
        self.reason = reason


class _Listener(AsyncConsumerRebalanceListener):
    """Forwards kafka-python's rebalance events to the group's handler.

    After a loss the consumer's sticky assignor is told to forget what it
    owned (``on_lost``): kafka-python 3.0.12 would otherwise claim the lost
    partitions again when it rejoins (see session.py)."""

    def __init__(self, handler: RebalanceHandler, on_lost: Callable[[], None]):
        self._handler = handler
        self._on_lost = on_lost

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._handler.revoked(set(revoked))

    async def on_partitions_lost(self, lost: Iterable[Any]) -> None:
        self._on_lost()
        self._handler.lost(set(lost))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        self._handler.assigned(set(assigned))


class ConsumerClient:
    """One kafka-python ``KafkaConsumer`` for one group membership (a ``GroupClient[Future]``).

    Not greenlet-safe, like the consumer itself: ``connect``, ``poll``,
    ``pause``/``resume``/``seek*`` and ``close`` belong to the poll greenlet;
    ``commit``, ``resolve_soon`` and the read-only methods may be called from
    any greenlet; ``wait`` is awaited on kafka-python's I/O loop (from the
    rebalance handler).
    """

    def __init__(self, settings: dict[str, Any], topics: Iterable[str]):
        check_gevent_patched()
        self._settings = dict(settings)
        self._topics = list(topics)
        self._consumer: KafkaConsumer | None = None
        self._join_answers = JoinAnswers()
        self._choose_stand_in: Callable[[JoinAnswers], str | None] = lambda answers: None
        # Memberships lost (kafka-python's word or the session fence's): a
        # commit never sends offsets taken before a loss.
        self._losses = 0

    @property
    def bootstrap_servers(self) -> Any:
        return self._settings.get("bootstrap_servers", CONSUMER_DEFAULTS["bootstrap_servers"])

    @property
    def request_timeout(self) -> float:
        """kafka-python's request timeout, in seconds."""
        return self._seconds("request_timeout_ms")

    @property
    def session_timeout(self) -> float:
        """The group session timeout, in seconds."""
        return float(self._settings.get("session_timeout_ms", CONSUMER_DEFAULTS["session_timeout_ms"])) / 1000

    @property
    def reconnect_backoff_max(self) -> float:
        """Longest wait of kafka-python between reconnection attempts, in seconds."""
        return self._seconds("reconnect_backoff_max_ms")

    def _seconds(self, setting: str) -> float:
        """A kafka-python setting in milliseconds (the one given, else its default), in seconds."""
        milliseconds: float = self._settings.get(setting, CONSUMER_DEFAULTS[setting])
        return milliseconds / 1000

    @property
    def kafka_consumer(self) -> KafkaConsumer | None:
        """The KafkaConsumer between connect() and close(), else None; read-only, for diagnostics."""
        return self._consumer

    @property
    def settings(self) -> dict[str, Any]:
        """A copy of the settings the KafkaConsumer is (or will be) created with."""
        return dict(self._settings)

    @property
    def static_member(self) -> bool:
        return self._settings.get("group_instance_id") is not None

    @property
    def connected(self) -> bool:
        """True between a successful connect() and close()/abandon()."""
        return self._consumer is not None

    # ------------------------------------------------------------ life cycle

    def connect(self, handler: RebalanceHandler) -> None:
        """Create the consumer and subscribe. Raises ConfigurationRefused when
        kafka-python refuses the settings; any other exception means "try
        again later" (typically no broker reachable)."""
        # Two steps to keep a handle on a half-built consumer: __init__
        # starts kafka-python's I/O thread before bootstrapping.
        consumer = KafkaConsumer.__new__(KafkaConsumer)
        try:
            consumer.__init__(**self._settings)
            self._note_join_answers(consumer._coordinator)
            listener = _Listener(handler, lambda: self._membership_lost(consumer))
            consumer.subscribe(self._topics, listener=listener)
        except Errors.KafkaConfigurationError as exc:
            self._discard(consumer)
            raise ConfigurationRefused(str(exc)) from exc
        except BaseException:
            self._discard(consumer)
            raise
        self._consumer = consumer

    @property
    def join_answers(self) -> JoinAnswers:
        """What the coordinator last answered this member's JoinGroup and SyncGroup with."""
        return self._join_answers

    def _note_join_answers(self, coordinator: ConsumerCoordinator) -> None:
        """Wrap the coordinator's handling of JoinGroup and SyncGroup answers to fill ``join_answers``."""
        answers = self._join_answers = JoinAnswers()
        process_join: Callable[[Any, float], Any] = coordinator._process_join_group_response
        process_sync: Callable[[Any, float], Any] = coordinator._process_sync_group_response

        def join_answered(response: Any, send_time: float) -> Any:
            processed = process_join(response, send_time)
            answers.leader, answers.member_id = response.leader, response.member_id
            return processed

        def sync_answered(response: Any, send_time: float) -> Any:
            try:
                assignment = process_sync(response, send_time)
            except Errors.RebalanceInProgressError:
                answers.refused_syncs += 1
                member_id = self._choose_stand_in(answers)
                if member_id is not None:
                    _send_stand_in_join(coordinator, member_id)
                raise
            answers.refused_syncs = 0
            return assignment

        coordinator._process_join_group_response = join_answered
        coordinator._process_sync_group_response = sync_answered

    def on_refused_sync(self, choose: Callable[[JoinAnswers], str | None]) -> None:
        """Call ``choose(join_answers)`` on kafka-python's I/O loop after each SyncGroup
        answer of REBALANCE_IN_PROGRESS; when it returns a member id, one JoinGroup
        is sent under that id beside the member's own (its answer is ignored)."""
        self._choose_stand_in = choose

    @staticmethod
    def _discard(consumer: KafkaConsumer) -> None:
        client = getattr(consumer, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:
                logger.debug("closing a half-built consumer failed", exc_info=True)

    def close(self, timeout: float | None) -> None:
        """Close the consumer: kafka-python revokes every partition (the
        handler's ``revoked`` runs), leaves the group and closes the
        connections, waiting at most ``timeout`` seconds for the leave."""
        consumer = self._consumer
        if consumer is None:
            return
        timeout_ms = None if timeout is None else max(int(timeout * 1000), 1)
        try:
            consumer.close(autocommit=False, timeout_ms=timeout_ms)
        finally:
            self._consumer = None

    def abandon(self, timeout: float) -> None:
        """The stop budget is spent: end kafka-python's I/O loop (waiting at
        most ``timeout`` seconds) and close the connections, without the
        group protocol."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            consumer._net.stop(timeout_ms=max(int(timeout * 1000), 1))
            consumer._client.close()
        except Exception:
            logger.debug("abandoning the consumer failed", exc_info=True)

    # ------------------------------------------------------------- fetching

    def _live(self) -> KafkaConsumer:
        """The consumer between connect() and close()/abandon()."""
        consumer = self._consumer
        if consumer is None:
            raise Errors.KafkaConnectionError("the consumer is closed")
        return consumer

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        """{TopicPartition: [ConsumerRecord]}; raises PositionsLost."""
        consumer = self._live()
        release_exhausted_batch(consumer)
        try:
            fetched: dict[Any, list[Any]] = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
            return fetched
        except Errors.LogTruncationError as exc:
            targets = {
                tp: (divergent.offset if divergent is not None else None)
                for tp, divergent in exc.divergent_offsets.items()
            }
            raise PositionsLost(targets, exc, "the log was truncated") from exc
        except Errors.NoOffsetForPartitionError as exc:
            partitions = exc.args[0] if exc.args else ()
            raise PositionsLost(dict.fromkeys(partitions), exc, "no offset committed by the group") from exc
        except Errors.OffsetOutOfRangeError as exc:
            partitions = exc.args[0] if exc.args else ()
            raise PositionsLost(dict.fromkeys(partitions), exc, "the committed offset is out of range") from exc

    def assignment(self) -> set[Any]:
        return set(self._live().assignment())

    def paused(self) -> set[Any]:
        return set(self._live().paused())

    def pause(self, tps: Iterable[Any]) -> None:
        self._live().pause(*tps)

    def resume(self, tps: Iterable[Any]) -> None:
        self._live().resume(*tps)

    def seek(self, tp: Any, offset: int) -> None:
        self._live().seek(tp, offset)

    def seek_to_beginning(self, tp: Any) -> None:
        self._live().seek_to_beginning(tp)

    def seek_to_end(self, tp: Any) -> None:
        self._live().seek_to_end(tp)

    def offsets_for_times(self, tps: Iterable[Any], timestamp_ms: int) -> dict[Any, int | None]:
        """{tp: first offset whose record's timestamp is at or after ``timestamp_ms``, None when no
        record is that late}; one blocking lookup, bounded by the request timeout."""
        consumer = self._live()
        found = consumer.offsets_for_times(
            dict.fromkeys(tps, timestamp_ms), timeout_ms=max(int(self.request_timeout * 1000), 1)
        )
        return {tp: offset_found(answer) for tp, answer in found.items()}

    def fetch_state(self, tp: Any) -> tuple[int | None, int | None]:
        """(high watermark, fetch position) known for ``tp``, read without I/O."""
        consumer = self._consumer
        partition = consumer._subscription.assignment.get(tp) if consumer is not None else None
        if partition is None:
            return None, None
        position = partition.position
        return partition.highwater, position.offset if position is not None else None

    # ------------------------------------------------------------- commits

    def commit(self, offsets: dict[Any, int], timeout: float | None = None) -> Future:
        """Start committing {tp: last processed offset} on the I/O loop,
        retrying retriable errors for at most ``timeout`` seconds (default:
        the request timeout), never after the membership was lost since this
        call (session.commit_unless_lost). Returns the commit's future
        (``is_done``, ``failed()``, ``exception``, ``add_both``)."""
        consumer = self._live()
        timeout = self.request_timeout if timeout is None else min(timeout, self.request_timeout)
        to_send = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in offsets.items()}
        losses = self._losses
        return consumer._manager.call_soon(
            session.commit_unless_lost,
            consumer,
            to_send,
            max(int(timeout * 1000), 1),
            lambda: self._losses == losses,
        )

    # -------------------------------------------------------- the I/O loop

    def new_future(self) -> Future:
        """A future the group resolves itself (with ``resolve_soon``)."""
        return Future()

    def resolve_soon(self, future: Future, error: BaseException | None = None) -> None:
        """Resolve ``future`` (failed with ``error`` if given) from the I/O loop, waking it now
        rather than at its next event."""

        def resolve() -> None:
            if not future.is_done:
                if error is None:
                    future.success(None)
                else:
                    future.failure(error)

        consumer = self._consumer
        try:
            if consumer is not None:
                consumer._net.call_soon_threadsafe(resolve)
                return
        except Exception:
            logger.debug("the I/O loop is closed; resolving at once", exc_info=True)
        resolve()

    async def wait(self, future: Future, timeout: float | None) -> bool:
        """Await ``future`` on the I/O loop for at most ``timeout`` seconds;
        True if it finished (successfully or not: check ``future.failed()``)."""
        consumer = self._consumer
        if consumer is None or future.is_done:
            return bool(future.is_done)
        timeout_ms = None if timeout is None else max(int(timeout * 1000), 1)
        # A timeout, or the future's own failure: the caller reads the future.
        with contextlib.suppress(Exception):
            await consumer._manager.wait_for(future, timeout_ms)
        return bool(future.is_done)

    def group_metadata(self) -> Any:
        """kafka-python's ConsumerGroupMetadata (group id, generation, member id, instance id) as the
        member knows it now, for a transaction's offsets (KIP-447 fencing); None before connect."""
        consumer = self._consumer
        return None if consumer is None else consumer.group_metadata()

    # -------------------------------------------------------------- health

    def membership(self) -> tuple[str, int]:
        """(member state, generation id): "unjoined", "rebalancing" (joining or
        syncing) or "stable", from kafka-python's public group_metadata(); the
        generation is -1 until the member joined one."""
        consumer = self._consumer
        if consumer is None:
            return "unjoined", -1
        metadata = consumer.group_metadata()
        return MEMBER_STATES[metadata.state], metadata.generation_id

    def reachable(self) -> bool:
        """True while some connection to a broker is up."""
        consumer = self._consumer
        return consumer is not None and any(conn.connected for conn in list(consumer._manager._conns.values()))

    def missing_topics(self) -> list[str]:
        """Subscribed topics the cluster's last metadata did not name (empty
        before any metadata arrived)."""
        consumer = self._consumer
        if consumer is None:
            return []
        cluster = consumer._cluster
        if not cluster.brokers():
            return []
        known = cluster.topics()
        return sorted(topic for topic in self._topics if topic not in known)

    # ---------------------------------------------------- the session fence

    def coordinator_silence(self) -> float | None:
        """Seconds since the group coordinator last answered this member; None
        while it is not a stable member (see session.coordinator_silence)."""
        consumer = self._consumer
        return session.coordinator_silence(consumer) if consumer is not None else None

    def forget_membership(self) -> None:
        """Treat the membership as lost locally: the next poll reports the held
        partitions lost (to the handler) and rejoins as a new member."""
        consumer = self._consumer
        if consumer is not None:
            self._losses += 1
            session.forget_membership(consumer)

    def _membership_lost(self, consumer: KafkaConsumer) -> None:
        """kafka-python reports the partitions lost."""
        self._losses += 1
        session.forget_owned_partitions(consumer)
