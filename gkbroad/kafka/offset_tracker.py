"""Which offset of each partition may be committed, given what was handed out
and what was acknowledged.

Kafka keeps a single committed offset per partition, so an offset may only be
committed once it and every lower offset handed out for that partition were
acknowledged (successfully or not). Acknowledgements arrive out of order
(many processors, batchers), and offsets are not contiguous (compacted topics,
transaction markers), so the tracker remembers the delivered offsets
themselves instead of assuming ``offset + 1`` follows ``offset``.

Pure data: no I/O, no clock, no greenlets. Each offset is appended once,
removed from a set once and popped once, so the cost is O(1) amortised per
offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

__all__ = ["OffsetTracker"]


class _PartitionOffsets:
    """Delivered offsets of one partition that are not committable yet."""

    __slots__ = ("delivered", "unacked", "withdrawn", "last_delivered")

    def __init__(self):
        # Ascending; the head is the lowest offset not yet known committable.
        self.delivered = deque()
        # Delivered offsets still waiting for their acknowledgement.
        self.unacked = set()
        # Unacked offsets that will never be acknowledged: not pending, but never passed.
        self.withdrawn = set()
        self.last_delivered = -1


class OffsetTracker:
    """Per-(topic, partition) bookkeeping of delivered and acknowledged offsets.

    ``tp`` is any hashable partition key, typically ``(topic, partition)``
    (kafka-python's ``TopicPartition`` compares and hashes equal to it).
    """

    def __init__(self):
        self._partitions = {}

    def delivered(self, tp: Hashable, offsets: Iterable[int]) -> None:
        """Record offsets handed out for ``tp``, in ascending order.

        An offset not above the last one delivered for ``tp`` is a duplicate
        and is ignored.
        """
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _PartitionOffsets()
        last = state.last_delivered
        append = state.delivered.append
        add = state.unacked.add
        for offset in offsets:
            if offset > last:
                append(offset)
                add(offset)
                last = offset
        state.last_delivered = last

    def done(self, tp_offsets: Iterable[tuple[Hashable, int]]) -> dict:
        """Acknowledge ``(tp, offset)`` pairs, successful and failed alike.

        Returns ``{tp: offset}`` for each partition whose committable offset
        advanced: the highest offset such that it and every lower offset
        delivered for ``tp`` were acknowledged. That is the last processed
        offset; Kafka's stored offset is one more. Acknowledgements of unknown
        offsets (never delivered, already acknowledged, forgotten partition)
        are ignored; acknowledgements above a gap are held until it closes.
        """
        partitions = self._partitions
        touched = set()
        for tp, offset in tp_offsets:
            state = partitions.get(tp)
            if state is not None and offset in state.unacked:
                state.unacked.remove(offset)
                state.withdrawn.discard(offset)
                touched.add(tp)
        advanced = {}
        for tp in touched:
            state = partitions[tp]
            delivered = state.delivered
            unacked = state.unacked
            last = None
            while delivered and delivered[0] not in unacked:
                last = delivered.popleft()
            if last is not None:
                advanced[tp] = last
        return advanced

    def withdraw(self, tp_offsets: Iterable[tuple[Hashable, int]]) -> None:
        """``(tp, offset)`` pairs delivered that will not be acknowledged (the
        pipeline gave them up at stop): they no longer count as pending, and
        the committable offset of ``tp`` never passes them. Unknown or already
        acknowledged offsets are ignored."""
        for tp, offset in tp_offsets:
            state = self._partitions.get(tp)
            if state is not None and offset in state.unacked:
                state.withdrawn.add(offset)

    def pending(self, tp: Hashable) -> int:
        """Number of offsets delivered for ``tp``, not acknowledged yet and not withdrawn."""
        state = self._partitions.get(tp)
        return len(state.unacked) - len(state.withdrawn) if state is not None else 0

    def forget(self, tp: Hashable) -> None:
        """Drop everything known about ``tp`` (the partition was released).

        Later acknowledgements for it are ignored; a later delivery starts a
        fresh history, as after a reassignment.
        """
        self._partitions.pop(tp, None)
