"""Rebalances: take assigned partitions, drain and commit revoked ones,
drop lost ones.

kafka-python awaits the ``AsyncConsumerRebalanceListener`` on its own I/O
loop (a greenlet under gevent). A revoked partition stops being pullable at
once, its undelivered buffer is dropped, and the listener waits, on a
``kafka.future.Future`` that ``ack`` resolves through the loop, until every
delivered record of it was acknowledged (bounded by ``drain_timeout``),
commits, and only then lets kafka-python give the partition up. Heartbeats
keep flowing meanwhile because the loop is never blocked. A lost partition
(the membership was lost) is dropped at once and nothing of it is committed.

kafka-python internals used (checked against kafka-python 3.0.12): the
consumer's ``_manager``/``_net`` (the I/O loop: ``wait_for``,
``call_soon_threadsafe``).
"""

import contextlib
import logging

import kafka.errors as Errors
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.future import Future

from gkbroad.kafka.state import PartitionState, describe

__all__ = ["RebalanceListener", "Rebalancing"]

log = logging.getLogger(__name__)


class RebalanceListener(AsyncConsumerRebalanceListener):
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


class Rebalancing:
    """ConsumerGroup's side of rebalances (a mixin over the group's state).
    It runs on kafka-python's I/O loop, except ``_maybe_finish_drain``, which
    ``ack`` calls from a producer greenlet."""

    def _assign(self, assigned):
        """kafka-python gave us partitions (I/O loop)."""
        for tp in sorted(assigned):
            epoch = self._epochs[tp] = self._epochs.get(tp, 0) + 1
            limit = self.topics[tp.topic]["max_buffer_records"]
            self._partitions[tp] = PartitionState(tp, epoch, limit)
            self._tracker.forget(tp)
            self._dirty.discard(tp)
            log.info("group %s: assigned %s:%d (epoch %d)", self.group_name, tp.topic, tp.partition, epoch)
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
            log.warning(
                "group %s: lost %s:%d; its %d unacknowledged record(s) will be re-read by its next owner",
                self.group_name,
                tp.topic,
                tp.partition,
                self._tracker.pending(tp),
            )
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
            log.info("group %s: released %s:%d (%s)", self.group_name, tp.topic, tp.partition, reason)
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
            log.warning(
                "group %s: drain of %s timed out after %s ms with %d ack(s) missing; "
                "committing what was acknowledged, the rest will be re-read",
                self.group_name,
                describe(tps),
                self.drain_timeout,
                sum(self._tracker.pending(tp) for tp in tps),
            )
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
                with contextlib.suppress(Exception):  # its committer logs the failure
                    await manager.wait_for(in_flight, timeout_ms)
        offsets = {
            state.tp: state.acked
            for state in states
            if state.acked is not None and (state.committed is None or state.acked > state.committed)
        }
        if not offsets:
            return
        future = self._commit_future(offsets)
        try:
            await future
        except Exception as exc:
            log.warning(
                "group %s: final commit of %s failed (%s: %s); the next owner will re-read from the previous commit",
                self.group_name,
                describe(offsets),
                type(exc).__name__,
                exc,
            )
        finally:
            self._commit_done(offsets, future)

    def _notify_start(self, tp):
        try:
            self.handle_consumer_start(tp.topic, tp.partition, self.group_name)
        except Exception:
            log.exception(
                "group %s: handle_consumer_start(%s, %d) raised; ignored", self.group_name, tp.topic, tp.partition
            )

    def _notify_stop(self, tp, reason):
        try:
            self.handle_consumer_stop(tp.topic, tp.partition, self.group_name, reason)
        except Exception:
            log.exception(
                "group %s: handle_consumer_stop(%s, %d, %s) raised; ignored",
                self.group_name,
                tp.topic,
                tp.partition,
                reason,
            )
