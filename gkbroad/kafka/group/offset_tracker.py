"""Which offset of each partition may be committed, given what was handed out
and what was acknowledged.

Kafka keeps a single committed offset per partition, so an offset may only be
committed once it and every lower offset handed out for that partition were
acknowledged (successfully or not). Acknowledgements arrive out of order
(many processors, batchers), and offsets are not contiguous (compacted topics,
transaction markers), so the tracker cannot assume ``offset + 1`` follows
``offset``.

It keeps the delivered offsets as runs of consecutive offsets, because that is
what Kafka hands out almost always: a pull of 500 records is one run, and
acknowledging a run from its start (the usual case: one processor handles a
partition in order) costs the same for 1 offset or 500. Only acknowledgements
above the lowest unacknowledged offset are remembered one by one, until the
gap below them closes.

Pure data: no I/O, no clock, no greenlets.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence

__all__ = ["OffsetTracker", "consecutive_runs"]


def consecutive_runs(acks: Iterable[tuple[str, int, int, int]]) -> Iterator[tuple[str, int, int, int, int]]:
    """``(topic, partition, offset, epoch)`` tuples as ``(topic, partition,
    epoch, first offset, last offset)`` runs: consecutive tuples of one
    partition and epoch whose offsets follow each other form one run."""
    run_topic: str | None = None  # of the run being gathered (None: no run yet)
    run_partition = run_epoch = first = last = 0
    for topic, partition, offset, epoch in acks:
        if offset == last + 1 and partition == run_partition and epoch == run_epoch and topic == run_topic:
            last = offset
            continue
        if run_topic is not None:
            yield run_topic, run_partition, run_epoch, first, last
        run_topic, run_partition, run_epoch, first, last = topic, partition, epoch, offset, offset
    if run_topic is not None:
        yield run_topic, run_partition, run_epoch, first, last


def _run_start(run: list[int]) -> int:
    return run[0]


class _PartitionOffsets:
    """Delivered offsets of one partition that are not committable yet."""

    __slots__ = ("runs", "early", "withdrawn", "pending", "last_delivered")

    def __init__(self) -> None:
        # Ascending, disjoint [first, last] runs of consecutive delivered offsets.
        # The head run's first offset is the lowest one not acknowledged yet.
        self.runs: deque[list[int]] = deque()
        # Acknowledged offsets above that lowest unacknowledged one.
        self.early: set[int] = set()
        # Unacknowledged offsets that will never be acknowledged (given up at
        # stop): not pending any more, but never passed either.
        self.withdrawn: set[int] = set()
        self.pending = 0  # delivered offsets neither acknowledged nor withdrawn
        self.last_delivered = -1


class OffsetTracker:
    """Per-(topic, partition) bookkeeping of delivered and acknowledged offsets.

    ``tp`` is any hashable partition key, typically ``(topic, partition)``
    (kafka-python's ``TopicPartition`` compares and hashes equal to it).
    """

    def __init__(self) -> None:
        self._partitions: dict[Hashable, _PartitionOffsets] = {}

    def delivered(self, tp: Hashable, offsets: Sequence[int]) -> None:
        """Record offsets handed out for ``tp``, in ascending order.

        An offset not above the last one delivered for ``tp`` is a duplicate
        and is ignored.
        """
        if not offsets:
            return
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _PartitionOffsets()
        first, last = offsets[0], offsets[-1]
        if first > state.last_delivered and last - first == len(offsets) - 1:
            self._add_run(state, first, last)  # ascending and no gap: one run
            return
        for offset in offsets:
            if offset > state.last_delivered:
                self._add_run(state, offset, offset)

    @staticmethod
    def _add_run(state: _PartitionOffsets, first: int, last: int) -> None:
        runs = state.runs
        if runs and runs[-1][1] == first - 1:
            runs[-1][1] = last
        else:
            runs.append([first, last])
        state.pending += last - first + 1
        state.last_delivered = last

    def done(self, tp: Hashable, first: int, last: int) -> int | None:
        """Acknowledge the offsets ``first``..``last`` of ``tp``, successful and
        failed alike.

        Returns the new committable offset of ``tp`` if it advanced, else
        None: the highest offset such that it and every lower offset delivered
        for ``tp`` were acknowledged. That is the last processed offset;
        Kafka's stored offset is one more. Offsets in the range that are
        unknown (never delivered, already acknowledged, forgotten partition)
        are ignored; acknowledgements above a gap are held until it closes.
        """
        state = self._partitions.get(tp)
        if state is None or not state.runs:
            return None
        committable = None
        offset = first
        while offset <= last and state.runs:
            head = state.runs[0]
            if offset == head[0] and not state.early and not state.withdrawn:
                # From the lowest unacknowledged offset on: the whole stretch at once.
                top = min(last, head[1])
                state.pending -= top - offset + 1
                head[0] = top + 1
                committable = top
                if head[0] > head[1]:
                    state.runs.popleft()
                offset = top + 1
            else:
                advanced = self._done_one(state, offset)
                if advanced is not None:
                    committable = advanced
                offset += 1
        return committable

    @staticmethod
    def _done_one(state: _PartitionOffsets, offset: int) -> int | None:
        """Acknowledge one offset; returns the new committable offset if it advanced."""
        runs, early = state.runs, state.early
        index = bisect_right(runs, offset, key=_run_start) - 1
        if index < 0 or offset > runs[index][1] or offset in early:
            return None  # not delivered, or acknowledged already
        if offset in state.withdrawn:
            state.withdrawn.remove(offset)  # acknowledged after all: it stopped counting as pending then
        else:
            state.pending -= 1
        if index or offset != runs[0][0]:
            early.add(offset)
            return None
        # The lowest unacknowledged offset: everything acknowledged above it follows.
        committable = offset
        head = runs[0]
        head[0] += 1
        while True:
            if head[0] > head[1]:
                runs.popleft()
                if not runs:
                    break
                head = runs[0]
            if head[0] not in early:
                break
            early.remove(head[0])
            committable = head[0]
            head[0] += 1
        return committable

    def withdraw(self, tp_offsets: Iterable[tuple[Hashable, int]]) -> None:
        """``(tp, offset)`` pairs delivered that will not be acknowledged (the
        pipeline gave them up at stop): they no longer count as pending, and
        the committable offset of ``tp`` never passes them. Unknown or already
        acknowledged offsets are ignored."""
        for tp, offset in tp_offsets:
            state = self._partitions.get(tp)
            if state is None or offset in state.early or offset in state.withdrawn:
                continue
            runs = state.runs
            index = bisect_right(runs, offset, key=_run_start) - 1
            if index >= 0 and offset <= runs[index][1]:
                state.withdrawn.add(offset)
                state.pending -= 1

    def rewind(self, tp: Hashable, offset: int) -> None:
        """Forget the offsets of ``tp`` delivered from ``offset`` on, acknowledged or not (a pause
        hands them out again): they stop counting as pending, and a later delivery of them starts
        afresh. Offsets below ``offset`` are kept as they are."""
        state = self._partitions.get(tp)
        if state is None:
            return
        runs = state.runs
        removed = 0
        while runs and runs[-1][0] >= offset:
            first, last = runs.pop()
            removed += last - first + 1
        if runs and runs[-1][1] >= offset:
            removed += runs[-1][1] - offset + 1
            runs[-1][1] = offset - 1
        early = {o for o in state.early if o >= offset}
        withdrawn = {o for o in state.withdrawn if o >= offset}
        state.early -= early
        state.withdrawn -= withdrawn
        state.pending -= removed - len(early) - len(withdrawn)  # acknowledged and withdrawn ones were not pending
        state.last_delivered = min(state.last_delivered, offset - 1)

    def pending(self, tp: Hashable) -> int:
        """Number of offsets delivered for ``tp``, not acknowledged yet and not withdrawn."""
        state = self._partitions.get(tp)
        return state.pending if state is not None else 0

    def forget(self, tp: Hashable) -> None:
        """Drop everything known about ``tp`` (the partition was released).

        Later acknowledgements for it are ignored; a later delivery starts a
        fresh history, as after a reassignment.
        """
        self._partitions.pop(tp, None)
