"""ConsumerGroup: one Kafka consumer-group membership shared by a pipeline's
producer greenlets.

kafka-python's ``KafkaConsumer`` is not greenlet-safe and its group membership
dies if ``poll()`` is not called often enough, so a ConsumerGroup owns exactly
one consumer and one *poll greenlet* that alone drives it: it polls in short
rounds whatever the handlers do, fills a bounded buffer per partition and
pauses/resumes partitions as their buffers fill and drain. Producer greenlets
only touch those buffers (``pull``) and report acknowledgements (``ack``);
committer greenlets send the resulting offsets.

Rebalances are handled by an ``AsyncConsumerRebalanceListener``, which
kafka-python awaits on its own I/O loop (a greenlet under gevent). A revoked
partition stops being pullable at once, its undelivered buffer is dropped, and
the listener waits, on a ``kafka.future.Future`` that ``ack`` resolves through
the loop, until every delivered record of it was acknowledged (bounded by
``drain_timeout``), commits, and only then lets kafka-python give the
partition up. Heartbeats keep flowing meanwhile because the loop is never
blocked.

Where the offsets start: kafka-python has a single ``auto_offset_reset`` per
consumer, but each topic has its own ``offset_reset_policy``. The consumer is
therefore created with ``auto_offset_reset="none"``: kafka-python still starts
every partition from its committed offset, and for a partition without one (or
whose offset fell out of range, or whose log was truncated) it raises from
``poll()`` instead of guessing; the poll greenlet catches that and seeks that
partition to the beginning or end as its topic's policy says.

kafka-python internals used (checked against kafka-python 3.0.12): the
consumer's ``_manager``/``_net`` (the I/O loop: ``call_soon``, ``wait_for``,
``call_soon_threadsafe``), ``_coordinator._commit_offsets_sync_async`` (the
retrying commit kafka-python itself uses before a rebalance; its public
``commit_async`` returns a coordinator-lookup future instead of the commit's
when the coordinator is unknown), and the Fetcher (see fetcher_fix).
"""

import logging
import random
import time
from collections import deque

import gevent
import kafka.errors as Errors
from gevent.event import Event
from kafka import KafkaConsumer
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.future import Future
from kafka.structs import OffsetAndMetadata

from gkbroad.kafka.fetcher_fix import release_exhausted_batch
from gkbroad.kafka.gevent_check import check_gevent_patched
from gkbroad.kafka.offset_tracker import OffsetTracker
from gkbroad.kafka.settings import ASSIGNORS, kafka_settings, poll_batch

__all__ = ["ConsumerGroup", "ASSIGNORS"]

log = logging.getLogger(__name__)

# KafkaProducerOptions the constructor takes by name, besides group_name and topics.
_GROUP_OPTIONS = ("client", "fetch_strategy", "committers_count", "instance_id",
                  "rebalance_timeout_ms", "session_timeout_ms", "heartbeat_interval_ms",
                  "drain_timeout", "partition_assignment_strategy")

# One poll waits at most this long, so the poll greenlet reacts quickly to
# drained buffers (resume) and to stop().
_POLL_TIMEOUT_MS = 100
_BACKOFF_FIRST = 0.1
# Commits usually fail because a rebalance is under way, which is over soon.
_CONNECT_BACKOFF_MAX, _COMMIT_BACKOFF_MAX = 5.0, 1.0
# Commit errors that only mean "the group is rebalancing, try again later".
_REBALANCE_ERRORS = (Errors.RebalanceInProgressError, Errors.CommitFailedError,
                     Errors.IllegalGenerationError, Errors.UnknownMemberIdError)


class _Backoff:
    """Exponential delay with jitter between retries of a failing operation."""

    def __init__(self, limit):
        self.limit = limit
        self.failures = 0

    def next(self):
        delay = min(self.limit, _BACKOFF_FIRST * 2 ** self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self):
        self.failures = 0


class _Partition:
    """What this process holds for one assigned partition, for one epoch."""

    __slots__ = ("tp", "epoch", "limit", "records", "paused", "released",
                 "first_offset", "last_buffered", "acked", "committed")

    def __init__(self, tp, epoch, limit):
        self.tp = tp
        self.epoch = epoch
        self.limit = limit
        self.records = deque()
        self.paused = False
        # Set once revocation or shutdown began: no more pulls nor commits by
        # the committers; the listener does the final commit.
        self.released = False
        self.first_offset = None      # first offset buffered in this epoch
        self.last_buffered = -1
        self.acked = None             # last processed offset (contiguously acked)
        self.committed = None         # last processed offset Kafka confirmed

    def restart_offset(self):
        """First offset not processed yet in this epoch, None if none was seen."""
        return self.acked + 1 if self.acked is not None else self.first_offset


class _RebalanceListener(AsyncConsumerRebalanceListener):
    """Forwards kafka-python's rebalance events (run on its I/O loop)."""

    def __init__(self, group):
        self._group = group

    async def on_partitions_revoked(self, revoked):
        group = self._group
        reason = "shutdown" if group._stop_requested.is_set() else "revoked"
        try:
            await group._release(revoked, reason)
        except Exception:
            log.exception("group %s: releasing %s failed", group.group_name, sorted(revoked))

    async def on_partitions_lost(self, lost):
        try:
            self._group._lose(lost)
        except Exception:
            log.exception("group %s: dropping lost %s failed", self._group.group_name, sorted(lost))

    async def on_partitions_assigned(self, assigned):
        try:
            self._group._assign(assigned)
        except Exception:
            log.exception("group %s: taking %s failed", self._group.group_name, sorted(assigned))


class ConsumerGroup:
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
        return cls(options["group_name"], options["topics"],
                   **{key: options[key] for key in _GROUP_OPTIONS})

    def __init__(self, group_name, topics, *, client, fetch_strategy, committers_count,
                 instance_id, rebalance_timeout_ms, session_timeout_ms, heartbeat_interval_ms,
                 drain_timeout, partition_assignment_strategy):
        check_gevent_patched()
        self.group_name = group_name
        self.topics = {topic["name"]: topic for topic in topics}
        self.drain_timeout = drain_timeout
        self.committers_count = committers_count
        self._poll_batch = poll_batch(topics)
        self._settings = kafka_settings(
            group_name, topics, self.client if client is None else client,
            fetch_strategy=fetch_strategy, instance_id=instance_id,
            rebalance_timeout_ms=rebalance_timeout_ms, session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            partition_assignment_strategy=partition_assignment_strategy)
        self._tracker = OffsetTracker()
        self._partitions = {}        # TopicPartition -> _Partition, assigned here now
        self._epochs = {}            # TopicPartition -> last epoch, kept across releases
        self._dirty = set()          # partitions with acked offsets to commit
        self._in_flight = {}         # TopicPartition -> kafka Future of its commit
        self._drain = None           # (partitions, kafka Future) while a release waits
        self._consumer = None
        self._greenlets = []
        self._stop_requested = Event()
        self._closing = False        # stop() began: nothing is pullable any more
        self._committers_stop = Event()
        self._commit_wanted = Event()
        self._new_records = Event()
        self.failure = None          # a configuration error kafka-python refused

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
        self._greenlets += [gevent.spawn(self._commit_loop)
                            for _ in range(self.committers_count)]

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
            log.warning("group %s: stop() timed out after %ss; killing %d greenlet(s)",
                        self.group_name, timeout, len(alive))
            gevent.killall(alive)

    # --------------------------------------------------------- producer side

    def assigned_partitions(self):
        """``(topic, partition)`` pairs that can be pulled now."""
        if self._closing:
            return []
        return [(tp.topic, tp.partition) for tp, state in self._partitions.items()
                if not state.released]

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
            log.debug("group %s: commit of %s:%s@%s ignored, partition not assigned",
                      self.group_name, topic, partition, offset)
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
                "position": (state.last_buffered + 1 if state.last_buffered >= 0
                             else fetch_position),
                "highwater": highwater,
                "lag": highwater - committed if None not in (highwater, committed) else None,
                "paused": state.paused,
                "epoch": state.epoch,
            }
        return {"group": self.group_name, "assigned": self.assigned_partitions(),
                "partitions": partitions, "failure": self.failure}

    def _fetch_state(self, tp):
        """(high watermark, fetch position) kafka-python knows for ``tp``,
        read without I/O; None for what is unknown."""
        consumer = self._consumer
        partition = consumer._subscription.assignment.get(tp) if consumer is not None else None
        if partition is None:
            return None, None
        position = partition.position
        return partition.highwater, position.offset if position is not None else None

    # ------------------------------------------------------------ poll greenlet

    def _poll_loop(self):
        consumer = self._connect()
        if consumer is None:
            return
        try:
            backoff = _Backoff(_CONNECT_BACKOFF_MAX)
            while not self._stop_requested.is_set():
                self._apply_flow_control(consumer)
                records = self._poll(consumer, backoff)
                if records:
                    self._buffer(records)
                    # Buffered fetch data lets poll() return without any I/O;
                    # yield so producers and heartbeats are never starved.
                    gevent.sleep(0)
            self._flush(consumer)
        finally:
            self._close_consumer()

    def _poll(self, consumer, backoff):
        """One poll() round: {tp: records}, empty after (logged) trouble."""
        try:
            release_exhausted_batch(consumer)
            records = consumer.poll(timeout_ms=_POLL_TIMEOUT_MS, max_records=self._poll_batch)
            backoff.reset()
            return records
        except (Errors.NoOffsetForPartitionError, Errors.OffsetOutOfRangeError,
                Errors.LogTruncationError) as exc:
            self._reset_positions(consumer, exc)
        except Exception as exc:
            delay = backoff.next()
            log.warning("group %s: poll failed (%s: %s); retrying in %.1fs", self.group_name,
                        type(exc).__name__, exc, delay,
                        exc_info=not isinstance(exc, Errors.KafkaError))
            gevent.sleep(delay)
        return {}

    def _flush(self, consumer):
        """Before leaving: stop pulls, then keep polling (so that the
        membership and any rebalance go on) until every delivered record was
        acknowledged and committed, for at most drain_timeout."""
        self._closing = True
        for state in self._partitions.values():
            state.records.clear()
        deadline = time.monotonic() + self.drain_timeout / 1000
        backoff = _Backoff(_COMMIT_BACKOFF_MAX)
        while self._unsettled() and time.monotonic() < deadline:
            try:
                consumer.pause(*consumer.assignment())
            except Exception:
                log.debug("pausing before leaving failed", exc_info=True)
            self._poll(consumer, backoff)  # nothing is fetched: all paused
        if self._unsettled():
            log.warning("group %s: leaving with unsettled partitions after %s ms: %s",
                        self.group_name, self.drain_timeout, self.stats()["partitions"])

    def _unsettled(self):
        """True while some delivered record is unacknowledged or some
        acknowledged offset is not committed yet."""
        return bool(self._dirty or self._in_flight) or any(
            self._tracker.pending(tp) for tp in self._partitions)

    def _connect(self):
        """Create and subscribe the consumer, retrying while the cluster is unreachable."""
        backoff = _Backoff(_CONNECT_BACKOFF_MAX)
        while not self._stop_requested.is_set():
            # Built in two steps to keep a handle on a half-built consumer:
            # __init__ starts kafka-python's I/O thread before bootstrapping.
            consumer = KafkaConsumer.__new__(KafkaConsumer)
            try:
                consumer.__init__(**self._settings)
                consumer.subscribe(list(self.topics), listener=_RebalanceListener(self))
            except Errors.KafkaConfigurationError as exc:
                log.error("group %s: kafka-python refused the configuration: %s",
                          self.group_name, exc)
                self.failure = str(exc)
                self._discard(consumer)
                return None
            except Exception as exc:
                self._discard(consumer)
                delay = backoff.next()
                log.warning("group %s: cannot connect to %s (%s: %s); retrying in %.1fs",
                            self.group_name, self._settings["bootstrap_servers"],
                            type(exc).__name__, exc, delay)
                self._stop_requested.wait(delay)
                continue
            self._consumer = consumer
            return consumer
        return None

    @staticmethod
    def _discard(consumer):
        client = getattr(consumer, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing a half-built consumer failed", exc_info=True)

    def _close_consumer(self):
        """Leave the group (the listener releases every partition first) and
        stop the committers. Idempotent, like KafkaConsumer.close()."""
        consumer = self._consumer
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
                if self._settings["group_instance_id"] is None:
                    log.info("group %s: left the group", self.group_name)
                else:  # kafka-python sends no LeaveGroup for static members
                    log.info("group %s: closed; as a static member it keeps its partitions "
                             "until the session times out", self.group_name)
            except Exception:
                log.exception("group %s: closing the consumer failed", self.group_name)
            self._consumer = None
        self._committers_stop.set()
        self._commit_wanted.set()

    def _apply_flow_control(self, consumer):
        """Pause partitions whose buffer is (nearly) full, resume drained ones."""
        batch = self._poll_batch
        for state in self._partitions.values():
            size = len(state.records)
            if state.paused:
                state.paused = size > state.limit // 2
            else:
                state.paused = size > state.limit - batch
        actual = consumer.paused()
        assigned = consumer.assignment()
        to_pause = [tp for tp, state in self._partitions.items()
                    if state.paused and tp not in actual and tp in assigned]
        # Also resumes partitions kafka-python kept paused across an eager
        # rebalance although this process started a fresh epoch for them.
        to_resume = [tp for tp in actual
                     if not (tp in self._partitions and self._partitions[tp].paused)]
        if to_pause:
            consumer.pause(*to_pause)
        if to_resume:
            consumer.resume(*to_resume)

    def _buffer(self, records):
        arrived = False
        for tp, batch in records.items():
            state = self._partitions.get(tp)
            if state is None or state.released:
                continue
            if batch[0].offset <= state.last_buffered:
                # Only after a log truncation rewound the position.
                log.warning("group %s: %s: dropping re-fetched records below offset %d",
                            self.group_name, tp, state.last_buffered + 1)
                batch = [record for record in batch if record.offset > state.last_buffered]
                if not batch:
                    continue
            if state.first_offset is None:
                state.first_offset = batch[0].offset
            state.records.extend(batch)
            state.last_buffered = batch[-1].offset
            arrived = True
        if arrived:
            waiters, self._new_records = self._new_records, Event()
            waiters.set()

    def _reset_positions(self, consumer, exc):
        """Start partitions kafka-python has no valid offset for as their
        topic's offset_reset_policy says."""
        if isinstance(exc, Errors.LogTruncationError):
            targets = exc.divergent_offsets
        else:
            targets = dict.fromkeys(exc.args[0] if exc.args else ())
        assigned = consumer.assignment()
        for tp, divergent in targets.items():
            if tp not in assigned:
                continue
            if divergent is not None:
                log.warning("group %s: %s: log truncated; resuming at offset %d",
                            self.group_name, tp, divergent.offset)
                consumer.seek(tp, divergent.offset)
                continue
            policy = self.topics[tp.topic]["offset_reset_policy"]
            log.info("group %s: %s has no usable committed offset (%s); starting from the "
                     "%s offset (offset_reset_policy)", self.group_name, tp,
                     type(exc).__name__, policy)
            if policy == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)

    # ------------------------------------------------------------- committers

    def _commit_loop(self):
        backoff = _Backoff(_COMMIT_BACKOFF_MAX)
        while True:
            self._commit_wanted.wait()
            if self._committers_stop.is_set():
                return
            offsets = self._take_commits()
            if not offsets:
                self._commit_wanted.clear()
                continue
            if self._send_commits(offsets):
                backoff.reset()
            else:
                self._committers_stop.wait(backoff.next())
            if self._dirty:
                self._commit_wanted.set()

    def _take_commits(self):
        """{tp: last processed offset} to send now: dirty partitions still held
        and not already being committed by another committer (two commits of
        one partition in flight could land in the wrong order)."""
        offsets = {}
        for tp in list(self._dirty):
            state = self._partitions.get(tp)
            if state is None or state.released:
                self._dirty.discard(tp)
            elif tp not in self._in_flight:
                self._dirty.discard(tp)
                if state.acked is not None and (state.committed is None
                                                or state.acked > state.committed):
                    offsets[tp] = state.acked
        return offsets

    def _commit_future(self, offsets):
        """Start committing {tp: last processed offset} on kafka-python's I/O
        loop, with its retries of retriable errors; returns a kafka Future."""
        consumer = self._consumer
        timeout_ms = consumer.config["request_timeout_ms"]
        to_send = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in offsets.items()}
        future = consumer._manager.call_soon(
            consumer._coordinator._commit_offsets_sync_async, to_send, timeout_ms)
        for tp in offsets:
            self._in_flight[tp] = future
        return future

    def _commit_done(self, offsets, future):
        """Book the outcome of a finished commit; True if it succeeded."""
        for tp in offsets:
            if self._in_flight.get(tp) is future:
                del self._in_flight[tp]
        if future.failed():
            return False
        log.debug("group %s: committed %s", self.group_name, _describe(offsets))
        for tp, offset in offsets.items():
            state = self._partitions.get(tp)
            if state is not None and (state.committed is None or offset > state.committed):
                state.committed = offset
        return True

    def _send_commits(self, offsets):
        consumer = self._consumer
        if consumer is None:
            return False
        states = {tp: self._partitions[tp] for tp in offsets}
        finished = Event()
        try:
            future = self._commit_future(offsets)
        except Exception as exc:
            log.warning("group %s: cannot send commit of %s: %s", self.group_name, offsets, exc)
            self._dirty.update(offsets)
            return False
        future.add_both(lambda _: finished.set())
        finished.wait()
        if self._commit_done(offsets, future):
            return True
        exc = future.exception
        log.log(logging.INFO if isinstance(exc, _REBALANCE_ERRORS) else logging.WARNING,
                "group %s: commit of %s failed (%s: %s); will retry while the partitions stay "
                "assigned", self.group_name, _describe(offsets), type(exc).__name__, exc)
        for tp, state in states.items():
            # Only for the same assignment: after a reassignment the old
            # offsets must not be committed.
            if self._partitions.get(tp) is state and not state.released:
                self._dirty.add(tp)
        return False

    # ------------------------------------------------------------- rebalances

    def _assign(self, assigned):
        """kafka-python gave us partitions (I/O loop)."""
        for tp in sorted(assigned):
            epoch = self._epochs[tp] = self._epochs.get(tp, 0) + 1
            limit = self.topics[tp.topic]["max_buffer_records"]
            self._partitions[tp] = _Partition(tp, epoch, limit)
            self._tracker.forget(tp)
            self._dirty.discard(tp)
            log.info("group %s: assigned %s:%d (epoch %d)", self.group_name, tp.topic,
                     tp.partition, epoch)
            self._notify_start(tp)

    def _lose(self, lost):
        """The membership was lost (I/O loop): nothing may be committed."""
        for tp in sorted(lost):
            state = self._partitions.pop(tp, None)
            if state is None:
                continue
            state.released = True
            state.records.clear()
            self._dirty.discard(tp)
            log.warning("group %s: lost %s:%d; its %d unacknowledged record(s) will be re-read "
                        "by its next owner", self.group_name, tp.topic, tp.partition,
                        self._tracker.pending(tp))
            self._tracker.forget(tp)
            self._notify_stop(tp, "lost")

    async def _release(self, revoked, reason):
        """Give partitions up cleanly (I/O loop): stop pulls, drop what was not
        delivered, wait for the delivered to be acked, commit, then notify."""
        states = [self._partitions[tp] for tp in sorted(revoked) if tp in self._partitions]
        if not states:
            return
        for state in states:
            state.released = True
            state.records.clear()
        if reason != "shutdown":  # stop() drained already, as long as allowed
            await self._wait_for_drain([state.tp for state in states])
        await self._final_commit(states)
        consumer = self._consumer
        assignment = consumer.assignment()
        for state in states:
            tp = state.tp
            restart = state.restart_offset()
            # With an eager assignor kafka-python keeps the fetch position of a
            # partition that is given straight back to us; it must resume at
            # the first unprocessed record, not after the dropped buffer.
            if tp in assignment and restart is not None:
                consumer.seek(tp, restart)
            del self._partitions[tp]
            self._tracker.forget(tp)
            log.info("group %s: released %s:%d (%s)", self.group_name, tp.topic, tp.partition,
                     reason)
            self._notify_stop(tp, reason)

    async def _wait_for_drain(self, tps):
        if all(self._tracker.pending(tp) == 0 for tp in tps):
            return
        future = Future()
        self._drain = (tps, future)
        manager = self._consumer._manager
        try:
            await manager.wait_for(future, self.drain_timeout)
        except Errors.KafkaTimeoutError:
            log.warning("group %s: drain of %s timed out after %s ms with %d ack(s) missing; "
                        "committing what was acknowledged, the rest will be re-read",
                        self.group_name, _describe(tps), self.drain_timeout,
                        sum(self._tracker.pending(tp) for tp in tps))
        finally:
            self._drain = None

    def _maybe_finish_drain(self):
        """Called after acks: wake the waiting release once its partitions are drained."""
        drain = self._drain
        if drain is None:
            return
        tps, future = drain
        if future.is_done or any(self._tracker.pending(tp) for tp in tps):
            return

        def resolve():
            if not future.is_done:
                future.success(None)
        # Through the loop, so that it wakes up now rather than at its next event.
        self._consumer._net.call_soon_threadsafe(resolve)

    async def _final_commit(self, states):
        manager = self._consumer._manager
        timeout_ms = self._consumer.config["request_timeout_ms"]
        for state in states:
            self._dirty.discard(state.tp)
            in_flight = self._in_flight.get(state.tp)
            if in_flight is not None and not in_flight.is_done:
                try:
                    await manager.wait_for(in_flight, timeout_ms)
                except Exception:
                    pass  # its committer logs the failure
        offsets = {state.tp: state.acked for state in states
                   if state.acked is not None
                   and (state.committed is None or state.acked > state.committed)}
        if not offsets:
            return
        future = self._commit_future(offsets)
        try:
            await future
        except Exception as exc:
            log.warning("group %s: final commit of %s failed (%s: %s); the next owner will "
                        "re-read from the previous commit", self.group_name, _describe(offsets),
                        type(exc).__name__, exc)
        finally:
            self._commit_done(offsets, future)

    def _notify_start(self, tp):
        try:
            self.handle_consumer_start(tp.topic, tp.partition, self.group_name)
        except Exception:
            log.exception("group %s: handle_consumer_start(%s, %d) raised; ignored",
                          self.group_name, tp.topic, tp.partition)

    def _notify_stop(self, tp, reason):
        try:
            self.handle_consumer_stop(tp.topic, tp.partition, self.group_name, reason)
        except Exception:
            log.exception("group %s: handle_consumer_stop(%s, %d, %s) raised; ignored",
                          self.group_name, tp.topic, tp.partition, reason)


def _describe(partitions):
    """Short text for logs: 'topic:partition[@offset], ...'."""
    if isinstance(partitions, dict):
        return ", ".join("%s:%d@%d" % (tp.topic, tp.partition, offset)
                         for tp, offset in sorted(partitions.items()))
    return ", ".join("%s:%d" % (tp.topic, tp.partition) for tp in sorted(partitions))
