"""ConsumerGroup: one Kafka consumer-group membership shared by a pipeline's
producer greenlets.

A ConsumerGroup owns exactly one kafka-python ``KafkaConsumer``, driven by
one poll greenlet alone (poller), which fills a bounded buffer per partition.
Producer greenlets only touch those buffers (``pull``) and report
acknowledgements (``ack``); committer greenlets send the resulting offsets
(committer); rebalances drain and commit revoked partitions before they are
given up (rebalance). This module holds the class that ties them together:
its state, lifecycle (start/stop), the producer-facing API and the user
callbacks. Its options were validated by gkbroad.kafka.options and are
translated to kafka-python settings by gkbroad.kafka.settings.
"""

import logging

import gevent
from gevent.event import Event

from gkbroad.kafka.committer import Committing
from gkbroad.kafka.gevent_check import check_gevent_patched
from gkbroad.kafka.offset_tracker import OffsetTracker
from gkbroad.kafka.poller import Polling
from gkbroad.kafka.rebalance import Rebalancing
from gkbroad.kafka.settings import ASSIGNORS, kafka_settings, poll_batch

__all__ = ["ConsumerGroup", "ASSIGNORS"]

log = logging.getLogger(__name__)

# KafkaProducerOptions the constructor takes by name, besides group_name and topics.
_GROUP_OPTIONS = (
    "client",
    "fetch_strategy",
    "committers_count",
    "instance_id",
    "rebalance_timeout_ms",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "drain_timeout",
    "partition_assignment_strategy",
)


class ConsumerGroup(Polling, Committing, Rebalancing):
    """One consumer-group membership: buffers, pull/ack/commit, rebalances.

    The Producer builds it (``from_options``) from options that
    gkbroad.kafka.options.KafkaProducerOptions validated and completed with
    defaults, and the group takes them as they are, without checking them
    again: whoever builds one directly (tests) must validate first, e.g.
    ``ConsumerGroup.from_options(validate(KafkaProducerOptions, {...}))``.

    Subclass it to carry kafka-python connection settings in the ``client``
    class attribute (used when the ``client`` argument is None) and to define
    ``handle_consumer_start`` / ``handle_consumer_stop``. Those callbacks run
    on kafka-python's I/O loop while the group rebalances, so keep them
    short; their exceptions are logged and otherwise ignored.

    ``topics`` are validated topic configs (dicts with ``name``,
    ``offset_reset_policy``, ``fetch_max_bytes``, ``max_buffer_records``,
    ``isolation_level``); they share one isolation level, and the largest
    ``fetch_max_bytes`` applies to all (kafka-python has one of each per
    consumer). ``rebalance_timeout_ms`` sets kafka-python's
    ``max_poll_interval_ms`` (which it sends as the rebalance timeout;
    ``client`` may set it too); keep ``drain_timeout`` below it.
    Times are in milliseconds except the ``timeout`` arguments, in seconds.
    """

    client = None

    @classmethod
    def from_options(cls, options):
        """Build the group from validated KafkaProducerOptions (see the class
        docstring); options the group does not use are ignored."""
        return cls(options["group_name"], options["topics"], **{key: options[key] for key in _GROUP_OPTIONS})

    def __init__(
        self,
        group_name,
        topics,
        *,
        client,
        fetch_strategy,
        committers_count,
        instance_id,
        rebalance_timeout_ms,
        session_timeout_ms,
        heartbeat_interval_ms,
        drain_timeout,
        partition_assignment_strategy,
    ):
        check_gevent_patched()
        self.group_name = group_name
        self.topics = {topic["name"]: topic for topic in topics}
        self.drain_timeout = drain_timeout
        self.committers_count = committers_count
        self._poll_batch = poll_batch(topics)
        self._settings = kafka_settings(
            group_name,
            topics,
            self.client if client is None else client,
            fetch_strategy=fetch_strategy,
            instance_id=instance_id,
            rebalance_timeout_ms=rebalance_timeout_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            partition_assignment_strategy=partition_assignment_strategy,
        )
        # Shared with the mixins: the poll greenlet (Polling), the committers
        # (Committing) and the rebalance listener (Rebalancing).
        self._tracker = OffsetTracker()
        self._partitions = {}  # TopicPartition -> PartitionState, assigned here now
        self._epochs = {}  # TopicPartition -> last epoch, kept across releases
        self._dirty = set()  # partitions with acked offsets to commit
        self._in_flight = {}  # TopicPartition -> kafka Future of its commit
        self._drain = None  # (partitions, kafka Future) while a release waits
        self._consumer = None
        self._greenlets = []
        self._stop_requested = Event()
        self._closing = False  # stop() began: nothing is pullable any more
        self._committers_stop = Event()
        self._commit_wanted = Event()
        self._new_records = Event()
        self.failure = None  # a configuration error kafka-python refused

    # --------------------------------------------------------------- callbacks

    def handle_consumer_start(self, topic, partition, group_name):
        """Called when ``(topic, partition)`` was assigned to this member."""

    def handle_consumer_stop(self, topic, partition, group_name, reason):
        """Called when ``(topic, partition)`` was released; ``reason`` is
        "revoked" (rebalance, after drain and commit), "lost" (the membership
        was lost, nothing committed) or "shutdown" (stop())."""

    # ----------------------------------------------------------------- service

    def start(self):
        """Spawn the poll greenlet (which connects) and the committers; returns at once."""
        if self._greenlets:
            return
        self._greenlets = [gevent.spawn(self._poll_loop)]
        self._greenlets += [gevent.spawn(self._commit_loop) for _ in range(self.committers_count)]

    def stop(self, timeout=None):
        """Stop pulls, keep the membership until every delivered record was
        acknowledged and committed (at most ``drain_timeout``), then leave the
        group, calling ``handle_consumer_stop(..., "shutdown")`` per partition,
        and end the greenlets. Leaving lets the others rebalance at once.

        ``timeout`` (seconds, None: no limit) bounds the wait; greenlets still
        running then are killed.
        """
        self._stop_requested.set()
        done = gevent.joinall(self._greenlets, timeout=timeout)
        alive = [g for g in self._greenlets if g not in done]
        if alive:
            log.warning(
                "group %s: stop() timed out after %ss; killing %d greenlet(s)", self.group_name, timeout, len(alive)
            )
            gevent.killall(alive)

    # --------------------------------------------------------- producer side

    def assigned_partitions(self):
        """``(topic, partition)`` pairs that can be pulled now."""
        if self._closing:
            return []
        return [(tp.topic, tp.partition) for tp, state in self._partitions.items() if not state.released]

    def pull(self, topic, partition, max_records):
        """Take up to ``max_records`` buffered records of the partition.

        Returns ``(epoch, records)``: records in offset order, registered as
        delivered; ``epoch`` identifies this assignment of the partition and
        must come back with each ack.
        """
        state = self._partitions.get((topic, partition))
        if state is None:
            return self._epochs.get((topic, partition), 0), []
        records = state.records
        if state.released or self._closing or not records:
            return state.epoch, []
        popleft = records.popleft
        batch = [popleft() for _ in range(min(max_records, len(records)))]
        self._tracker.delivered(state.tp, [record.offset for record in batch])
        return state.epoch, batch

    def ack(self, acks):
        """Acknowledge ``(topic, partition, offset, epoch)`` tuples, successful
        or failed alike. Acks from an earlier epoch of a partition (before it
        was reassigned) or for partitions no longer held are ignored."""
        partitions = self._partitions
        accepted = []
        for topic, partition, offset, epoch in acks:
            state = partitions.get((topic, partition))
            if state is not None and state.epoch == epoch:
                accepted.append((state.tp, offset))
        if not accepted:
            return
        for tp, offset in self._tracker.done(accepted).items():
            self.commit(tp.topic, tp.partition, offset)
        self._maybe_finish_drain()

    def commit(self, topic, partition, offset):
        """Ask for ``offset`` (the last processed one) to be committed; Kafka
        stores ``offset + 1``. Returns at once; commits are coalesced per
        partition and sent by the committer greenlets."""
        state = self._partitions.get((topic, partition))
        if state is None:
            log.debug(
                "group %s: commit of %s:%s@%s ignored, partition not assigned",
                self.group_name,
                topic,
                partition,
                offset,
            )
            return
        if state.acked is None or offset > state.acked:
            state.acked = offset
        if not state.released:
            self._dirty.add(state.tp)
            self._commit_wanted.set()

    def wait_for_records(self, timeout):
        """Block the calling greenlet until new records were buffered or
        ``timeout`` seconds passed; True if records arrived."""
        return self._new_records.wait(timeout)

    def stats(self):
        """A small snapshot for progress reports.

        Per partition: ``buffered`` records; ``pending`` acks; ``committed``,
        the offset Kafka stores for the group (last processed + 1; None until
        the first commit of this assignment); ``position``, the next offset to
        be buffered; ``highwater``, the end offset the fetcher last saw;
        ``lag`` (highwater - committed); ``paused``; ``epoch``. None marks
        what is not known yet.
        """
        partitions = {}
        for tp, state in self._partitions.items():
            committed = state.committed + 1 if state.committed is not None else None
            highwater, fetch_position = self._fetch_state(tp)
            partitions[(tp.topic, tp.partition)] = {
                "buffered": len(state.records),
                "pending": self._tracker.pending(tp),
                "committed": committed,
                "position": (state.last_buffered + 1 if state.last_buffered >= 0 else fetch_position),
                "highwater": highwater,
                "lag": highwater - committed if None not in (highwater, committed) else None,
                "paused": state.paused,
                "epoch": state.epoch,
            }
        return {
            "group": self.group_name,
            "assigned": self.assigned_partitions(),
            "partitions": partitions,
            "failure": self.failure,
        }

    def _fetch_state(self, tp):
        """(high watermark, fetch position) kafka-python knows for ``tp``,
        read without I/O; None for what is unknown."""
        consumer = self._consumer
        partition = consumer._subscription.assignment.get(tp) if consumer is not None else None
        if partition is None:
            return None, None
        position = partition.position
        return partition.highwater, position.offset if position is not None else None
