"""The poll greenlet: the only code that drives the KafkaConsumer.

kafka-python's ``KafkaConsumer`` is not greenlet-safe and its group
membership dies if ``poll()`` is not called often enough, so one greenlet
connects (retrying while the cluster is unreachable), then polls in short
rounds whatever the handlers do, fills a bounded buffer per partition and
pauses/resumes partitions as their buffers fill and drain. On stop() it keeps
polling, with every partition paused, until what was delivered is
acknowledged and committed, then closes the consumer (leaving the group).

Where the offsets start: kafka-python has a single ``auto_offset_reset`` per
consumer, but each topic has its own ``offset_reset_policy``. The consumer is
therefore created with ``auto_offset_reset="none"``: kafka-python still starts
every partition from its committed offset, and for a partition without one (or
whose offset fell out of range, or whose log was truncated) it raises from
``poll()`` instead of guessing; the poll greenlet catches that and seeks that
partition to the beginning or end as its topic's policy says.

kafka-python internals used: the Fetcher (see fetcher_fix).
"""

import logging
import time

import gevent
import kafka.errors as Errors
from gevent.event import Event
from kafka import KafkaConsumer

from gkbroad.kafka.fetcher_fix import release_exhausted_batch
from gkbroad.kafka.rebalance import RebalanceListener
from gkbroad.kafka.state import COMMIT_BACKOFF_MAX, CONNECT_BACKOFF_MAX, Backoff

__all__ = ["Polling"]

log = logging.getLogger(__name__)

# One poll waits at most this long, so the poll greenlet reacts quickly to
# drained buffers (resume) and to stop().
_POLL_TIMEOUT_MS = 100


class Polling:
    """ConsumerGroup's poll greenlet (a mixin over the group's state): it
    alone creates, polls and closes ``_consumer``, fills the ``_partitions``
    buffers and pauses/resumes their fetching."""

    def _poll_loop(self):
        consumer = self._connect()
        if consumer is None:
            return
        try:
            backoff = Backoff(CONNECT_BACKOFF_MAX)
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
        except (Errors.NoOffsetForPartitionError, Errors.OffsetOutOfRangeError, Errors.LogTruncationError) as exc:
            self._reset_positions(consumer, exc)
        except Exception as exc:
            delay = backoff.next()
            log.warning(
                "group %s: poll failed (%s: %s); retrying in %.1fs",
                self.group_name,
                type(exc).__name__,
                exc,
                delay,
                exc_info=not isinstance(exc, Errors.KafkaError),
            )
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
        backoff = Backoff(COMMIT_BACKOFF_MAX)
        while self._unsettled() and time.monotonic() < deadline:
            try:
                consumer.pause(*consumer.assignment())
            except Exception:
                log.debug("pausing before leaving failed", exc_info=True)
            self._poll(consumer, backoff)  # nothing is fetched: all paused
        if self._unsettled():
            log.warning(
                "group %s: leaving with unsettled partitions after %s ms: %s",
                self.group_name,
                self.drain_timeout,
                self.stats()["partitions"],
            )

    def _unsettled(self):
        """True while some delivered record is unacknowledged or some
        acknowledged offset is not committed yet."""
        return bool(self._dirty or self._in_flight) or any(self._tracker.pending(tp) for tp in self._partitions)

    def _connect(self):
        """Create and subscribe the consumer, retrying while the cluster is unreachable."""
        backoff = Backoff(CONNECT_BACKOFF_MAX)
        while not self._stop_requested.is_set():
            # Built in two steps to keep a handle on a half-built consumer:
            # __init__ starts kafka-python's I/O thread before bootstrapping.
            consumer = KafkaConsumer.__new__(KafkaConsumer)
            try:
                consumer.__init__(**self._settings)
                consumer.subscribe(list(self.topics), listener=RebalanceListener(self))
            except Errors.KafkaConfigurationError as exc:
                log.error("group %s: kafka-python refused the configuration: %s", self.group_name, exc)
                self.failure = str(exc)
                self._discard(consumer)
                return None
            except Exception as exc:
                self._discard(consumer)
                delay = backoff.next()
                log.warning(
                    "group %s: cannot connect to %s (%s: %s); retrying in %.1fs",
                    self.group_name,
                    self._settings["bootstrap_servers"],
                    type(exc).__name__,
                    exc,
                    delay,
                )
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
                    log.info(
                        "group %s: closed; as a static member it keeps its partitions until the session times out",
                        self.group_name,
                    )
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
        to_pause = [
            tp for tp, state in self._partitions.items() if state.paused and tp not in actual and tp in assigned
        ]
        # Also resumes partitions kafka-python kept paused across an eager
        # rebalance although this process started a fresh epoch for them.
        to_resume = [tp for tp in actual if not (tp in self._partitions and self._partitions[tp].paused)]
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
                log.warning(
                    "group %s: %s: dropping re-fetched records below offset %d",
                    self.group_name,
                    tp,
                    state.last_buffered + 1,
                )
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
                log.warning("group %s: %s: log truncated; resuming at offset %d", self.group_name, tp, divergent.offset)
                consumer.seek(tp, divergent.offset)
                continue
            policy = self.topics[tp.topic]["offset_reset_policy"]
            log.info(
                "group %s: %s has no usable committed offset (%s); starting from the %s offset (offset_reset_policy)",
                self.group_name,
                tp,
                type(exc).__name__,
                policy,
            )
            if policy == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)
