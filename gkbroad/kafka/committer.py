"""The committer greenlets: send the offsets ``ack``/``commit`` marked.

``commit`` only records the last processed offset of a partition and marks it
dirty; ``committers_count`` greenlets take dirty partitions, coalesced, and
commit them through kafka-python's I/O loop, never two commits of one
partition at once (they could land in the wrong order). A failed commit is
retried, with backoff, while the partition stays assigned in the same epoch;
once a partition is released the rebalance listener does its final commit,
with the same ``commit_future``/``commit_done`` pair.

kafka-python internals used (checked against kafka-python 3.0.12): the
consumer's ``_manager.call_soon`` and ``_coordinator._commit_offsets_sync_async``
(the retrying commit kafka-python itself uses before a rebalance; its public
``commit_async`` returns a coordinator-lookup future instead of the commit's
when the coordinator is unknown).
"""

import logging

import kafka.errors as Errors
from gevent.event import Event
from kafka.structs import OffsetAndMetadata

from gkbroad.kafka.state import COMMIT_BACKOFF_MAX, Backoff, describe

__all__ = ["Committing"]

log = logging.getLogger(__name__)

# Commit errors that only mean "the group is rebalancing, try again later".
_REBALANCE_ERRORS = (
    Errors.RebalanceInProgressError,
    Errors.CommitFailedError,
    Errors.IllegalGenerationError,
    Errors.UnknownMemberIdError,
)


class Committing:
    """ConsumerGroup's committer greenlets (a mixin over the group's state:
    ``_partitions``, ``_dirty``, ``_in_flight``, ``_consumer`` and the
    ``_commit_wanted``/``_committers_stop`` events)."""

    def _commit_loop(self):
        backoff = Backoff(COMMIT_BACKOFF_MAX)
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
                if state.acked is not None and (state.committed is None or state.acked > state.committed):
                    offsets[tp] = state.acked
        return offsets

    def _commit_future(self, offsets):
        """Start committing {tp: last processed offset} on kafka-python's I/O
        loop, with its retries of retriable errors; returns a kafka Future."""
        consumer = self._consumer
        timeout_ms = consumer.config["request_timeout_ms"]
        to_send = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in offsets.items()}
        future = consumer._manager.call_soon(consumer._coordinator._commit_offsets_sync_async, to_send, timeout_ms)
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
        log.debug("group %s: committed %s", self.group_name, describe(offsets))
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
        log.log(
            logging.INFO if isinstance(exc, _REBALANCE_ERRORS) else logging.WARNING,
            "group %s: commit of %s failed (%s: %s); will retry while the partitions stay assigned",
            self.group_name,
            describe(offsets),
            type(exc).__name__,
            exc,
        )
        for tp, state in states.items():
            # Only for the same assignment: after a reassignment the old
            # offsets must not be committed.
            if self._partitions.get(tp) is state and not state.released:
                self._dirty.add(tp)
        return False
