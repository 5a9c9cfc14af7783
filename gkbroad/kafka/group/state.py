"""GroupState: everything a ConsumerGroup knows about the partitions it holds.

Pure data: no I/O, no clock, no greenlets, no kafka-python. The poller, the
committer and the rebalancer (and the producer greenlets through the group)
all read and change the group through these operations, so each rule about a
partition (which epoch is current, what may be committed, when it is
forgotten) is written once, here, and tested by value in
tests/unit/test_group_state.py.

A partition's life: ``assign`` starts a new epoch; ``buffer`` adds fetched
records; ``pull`` hands them out (the OffsetTracker remembers them); ``ack``
advances the contiguous acknowledged offset and marks the partition dirty;
``take_commits`` hands dirty offsets to a committer and ``commit_done`` books
the result; finally ``begin_release`` (revoked, shutdown) stops pulls and
commits, ``take_final_commits`` gives what is left to commit, and ``release``
forgets it, or ``lose`` forgets it at once with nothing committed.

A handler may pause its partition (``rewind``): the records from its message
on are handed out again, in order, once the pause ends. The partition keeps
its assignment epoch (commits go on) but starts a new *delivery* epoch: what
was handed out before from that offset on is stale, while the earlier
offsets of the older delivery epochs still count when their acks arrive
(``carried``).

Offsets in this module are *last processed* offsets; Kafka stores one more.
Partition keys are kafka-python ``TopicPartition`` tuples (anything with
``topic`` and ``partition`` attributes that hashes like the tuple).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .offset_tracker import OffsetTracker, consecutive_runs

__all__ = ["CommitRequest", "GroupState", "PartitionState", "Unsaved"]


def _nothing() -> None:
    """GroupState.on_room until a poller listens."""


class PartitionState:
    """What this process holds for one assigned partition, for one epoch."""

    __slots__ = (
        "tp",
        "epoch",
        "limit",
        "records",
        "paused",
        "released",
        "first_offset",
        "last_buffered",
        "acked",
        "committed",
        "committing",
        "dirty",
        "commit_taken_at",
        "delivery",
        "carried",
        "held_until",
        "hold_reason",
        "seek_to",
    )

    def __init__(self, tp: Any, epoch: int, limit: int):
        self.tp = tp
        self.epoch = epoch
        self.limit = limit
        self.records: deque[Any] = deque()
        self.paused = False
        # Revocation or shutdown began: no more pulls, and commits only
        # through take_final_commits.
        self.released = False
        self.first_offset: int | None = None  # first offset buffered in this epoch
        self.last_buffered = -1
        self.acked: int | None = None  # last processed offset (contiguously acked)
        self.committed: int | None = None  # last processed offset Kafka confirmed
        self.committing = False  # a commit of this partition is in flight
        self.dirty = False  # acked moved past what was committed or is being committed
        self.commit_taken_at = float("-inf")  # when take_commits last took this partition (monotonic s)
        self.delivery = epoch  # the epoch pulls hand out now: the assignment's, or a later one after a rewind
        # {earlier delivery epoch: first offset no longer valid in it}, after rewinds
        self.carried: dict[int, int] = {}
        self.held_until: float | None = None  # a handler's pause: monotonic end (inf: until resumed)
        self.hold_reason = ""
        self.seek_to: int | None = None  # a rewind's offset the client has not been moved to yet

    def delivered_in(self, epoch: int, offset: int) -> bool:
        """True when ``offset`` handed out in delivery ``epoch`` still counts."""
        if epoch == self.delivery:
            return True
        cutoff = self.carried.get(epoch)
        return cutoff is not None and offset < cutoff

    def may_resume(self) -> bool:
        """A paused buffer may be fetched into again: half empty, and no handler's pause holds it."""
        return self.held_until is None and len(self.records) <= self.limit // 2

    def restart_offset(self) -> int | None:
        """First offset not processed yet in this epoch, None if none was seen."""
        return self.acked + 1 if self.acked is not None else self.first_offset

    def uncommitted_offset(self) -> int | None:
        """The acknowledged offset if it is beyond the committed one, else None."""
        acked = self.acked
        if acked is None or (self.committed is not None and acked <= self.committed):
            return None
        return acked

    def uncommitted(self) -> bool:
        return self.uncommitted_offset() is not None

    def unsaved(self) -> Unsaved | None:
        """The acknowledged offsets not committed yet; None if there are none."""
        acked = self.uncommitted_offset()
        if acked is None:
            return None
        if self.committed is not None:
            first = self.committed + 1
        else:
            first = self.first_offset if self.first_offset is not None else acked
        return Unsaved(self.tp, first, acked)


@dataclass(frozen=True)
class CommitRequest:
    """Offsets handed to one commit: {tp: last processed offset}, and the
    epoch each was taken in (its outcome only counts for that epoch)."""

    offsets: dict[Any, int]
    epochs: dict[Any, int] = field(repr=False)

    def __bool__(self) -> bool:
        return bool(self.offsets)


@dataclass(frozen=True)
class Unsaved:
    """Acknowledged offsets of a partition that were not committed when it was
    given up: offsets ``first``..``last`` will be read again by the next owner."""

    tp: Any
    first: int
    last: int

    @property
    def records(self) -> int:
        """Most records that will be read again (offsets may have gaps)."""
        return self.last - self.first + 1


class GroupState:
    """The partitions held now, their buffers and offsets, and what to commit.

    ``limits`` maps each topic to its ``max_buffer_records``; ``poll_batch``
    is the most records one poll may add to a partition (pausing keeps room
    for it). ``commit_interval`` is the least time (seconds) between two
    commits of one partition taken by take_commits: acks that arrive
    meanwhile are coalesced into the next commit. Final commits (release,
    stop) are never held back.
    """

    def __init__(self, limits: Mapping[str, int], poll_batch: int, commit_interval: float = 0.0):
        self.limits = dict(limits)
        self.poll_batch = poll_batch
        self.commit_interval = commit_interval
        self.partitions: dict[Any, PartitionState] = {}
        self.tracker = OffsetTracker()
        self._epochs: dict[Any, int] = {}  # last epoch per partition, kept across releases
        self.closing = False  # the group is stopping: nothing is pullable any more
        self.unsaved: list[Unsaved] = []  # released with acknowledged offsets not committed
        # Called when a pull leaves a paused buffer room to resume (the poller waits for it, see nothing_to_fetch).
        self.on_room: Callable[[], None] = _nothing

    # ------------------------------------------------------------ membership

    def assign(self, tps: Iterable[Any]) -> list[PartitionState]:
        """Start a fresh epoch for each partition; returns their states."""
        started = []
        for tp in sorted(tps):
            self._forget(tp)
            epoch = self._epochs[tp] = self._epochs.get(tp, 0) + 1
            state = self.partitions[tp] = PartitionState(tp, epoch, self.limits[tp.topic])
            started.append(state)
        return started

    def lose(self, tps: Iterable[Any]) -> list[tuple[Any, int]]:
        """The membership was lost: forget the partitions, commit nothing
        (acknowledged offsets not committed yet are kept in ``unsaved``).
        Returns ``(tp, unacknowledged records)`` for each one held."""
        dropped = []
        for tp in sorted(tps):
            state = self.partitions.get(tp)
            if state is not None:
                dropped.append((tp, self.tracker.pending(tp)))
                unsaved = state.unsaved()
                if unsaved is not None:
                    self.unsaved.append(unsaved)
                self._forget(tp)
        return dropped

    def begin_release(self, tps: Iterable[Any]) -> list[Any]:
        """Stop pulling and committing the partitions (revoked, shutdown) and
        drop what was buffered but not delivered. Returns those held."""
        held = []
        for tp in sorted(tps):
            state = self.partitions.get(tp)
            if state is not None:
                state.released = True
                state.records.clear()
                held.append(tp)
        return held

    def release(self, tp: Any) -> int | None:
        """Forget a released partition; returns the offset a consumer that
        keeps it must resume at (None if nothing was seen). Acknowledged
        offsets that were never committed are kept in ``unsaved``."""
        state = self.partitions.get(tp)
        if state is None:
            return None
        unsaved = state.unsaved()
        if unsaved is not None:
            self.unsaved.append(unsaved)
        restart = state.restart_offset()
        self._forget(tp)
        return restart

    def _forget(self, tp: Any) -> None:
        """The one place a partition is dropped: its state, buffer and offsets."""
        state = self.partitions.pop(tp, None)
        if state is not None:
            state.released = True
            state.records.clear()
        self.tracker.forget(tp)

    def is_current(self, tp: Any, epoch: int, offset: int | None = None) -> bool:
        """True while ``tp`` is held in delivery ``epoch`` (and, after a rewind, while
        ``offset`` is below the rewind's; without an offset only the current delivery
        epoch counts). A partition being released is still held: its delivered records
        must be handled and acknowledged for the drain to end; once released, its
        records are stale."""
        topic, partition = tp
        return not self.is_stale((topic, partition, offset, epoch))

    def is_stale(self, data: tuple[str, int, int | None, int]) -> bool:
        """Not is_current, for a record's acknowledger data ``(topic, partition, offset, epoch)``:
        the processors ask it before every handle_message, so it answers in one call."""
        topic, partition, offset, epoch = data
        state = self.partitions.get((topic, partition))
        if state is None:
            return True
        if state.delivery == epoch:  # the usual case
            return False
        return offset is None or not state.delivered_in(epoch, offset)

    # ---------------------------------------------------------------- pauses

    def rewind(self, tp: Any, epoch: int, offset: int, until: float, reason: str) -> bool:
        """A handler paused ``tp`` at the record ``offset`` it was handed in ``epoch``: from
        that offset on, nothing handed out so far counts (it is stale), the buffer is dropped,
        and the partition is held until monotonic time ``until`` (inf: until resumed), then
        read again from ``offset``. False when that record is stale already (the partition
        moved on, or an earlier pause covered it): nothing changes."""
        state = self.partitions.get(tp)
        if state is None or state.released or not state.delivered_in(epoch, offset):
            return False
        for earlier in (*state.carried, state.delivery):
            state.carried[earlier] = min(state.carried.get(earlier, offset), offset)
        state.delivery = self._epochs[tp] = self._epochs[tp] + 1
        state.records.clear()
        state.last_buffered = min(state.last_buffered, offset - 1)
        self.tracker.rewind(tp, offset)
        state.seek_to = offset
        state.held_until = until
        state.hold_reason = reason
        return True

    def resume(self, tp: Any) -> bool:
        """End a handler's pause of ``tp`` now; False when it was not paused."""
        state = self.partitions.get(tp)
        if state is None or state.held_until is None:
            return False
        state.held_until = 0.0
        return True

    def take_seeks(self) -> list[tuple[Any, int]]:
        """``(tp, offset)`` the client must seek to (rewinds since the last call)."""
        seeks = []
        for tp, state in self.partitions.items():
            if state.seek_to is not None:
                seeks.append((tp, state.seek_to))
                state.seek_to = None
        return seeks

    def end_holds(self, now: float) -> list[Any]:
        """Partitions whose pause ended by monotonic time ``now``; they may be fetched again."""
        ended = []
        for tp, state in self.partitions.items():
            if state.held_until is not None and state.held_until <= now:
                state.held_until = None
                state.hold_reason = ""
                ended.append(tp)
        return ended

    # --------------------------------------------------------------- records

    def buffer(self, fetched: Mapping[Any, Sequence[Any]]) -> tuple[bool, list[tuple[Any, int]]]:
        """Add fetched records (objects with an ``offset``) to the buffers of
        partitions held and not released. Returns (records arrived, [(tp,
        first offset kept)] for partitions whose fetch was rewound below what
        was buffered already, i.e. after a log truncation)."""
        arrived, rewound = False, []
        for tp, batch in fetched.items():
            state = self.partitions.get(tp)
            if state is None or state.released or state.held_until is not None or not batch:
                continue  # a held partition's records were fetched before it paused: read again later
            if batch[0].offset <= state.last_buffered:
                rewound.append((tp, state.last_buffered + 1))
                batch = [record for record in batch if record.offset > state.last_buffered]
                if not batch:
                    continue
            if state.first_offset is None:
                state.first_offset = batch[0].offset
            state.records.extend(batch)
            state.last_buffered = batch[-1].offset
            arrived = True
        return arrived, rewound

    def pullable(self) -> list[tuple[str, int]]:
        """``(topic, partition)`` pairs that can be pulled now."""
        if self.closing:
            return []
        return [(tp.topic, tp.partition) for tp, state in self.partitions.items() if not state.released]

    def pull(self, key: Hashable, max_records: int) -> tuple[int, list[Any]]:
        """Take up to ``max_records`` buffered records of ``key`` (a
        ``(topic, partition)`` pair), registered as delivered; returns
        ``(epoch, records)``."""
        state = self.partitions.get(key)
        if state is None:
            return self._epochs.get(key, 0), []
        records = state.records
        if state.released or self.closing or not records:
            return state.delivery, []
        popleft = records.popleft
        batch = [popleft() for _ in range(min(max_records, len(records)))]
        self.tracker.delivered(state.tp, [record.offset for record in batch])
        if state.paused and state.may_resume():
            self.on_room()
        return state.delivery, batch

    def nothing_to_fetch(self) -> bool:
        """Partitions are held and every one is paused (a full buffer, a handler's pause): no poll
        can bring records before a pull makes room (on_room) or a pause ends."""
        return bool(self.partitions) and all(state.paused for state in self.partitions.values())

    def drop_buffers(self) -> None:
        """The group is stopping: nothing more is handed out."""
        self.closing = True
        for state in self.partitions.values():
            state.records.clear()

    # --------------------------------------------------------------- offsets

    def ack(self, acks: Iterable[tuple[str, int, int, int]]) -> bool:
        """Acknowledge ``(topic, partition, offset, epoch)`` tuples. Acks of
        another epoch or of partitions not held are ignored. True when some
        partition's acknowledged offset advanced.

        Acks usually come as long runs of consecutive offsets of one partition
        (a processor's chunk, a batch), so they are booked a run at a time."""
        partitions = self.partitions
        advanced = False
        for topic, partition, epoch, first, last in consecutive_runs(acks):
            state = partitions.get((topic, partition))
            if state is None:
                continue
            if epoch != state.delivery:
                # An earlier delivery epoch (before a rewind): only the offsets below its cutoff count.
                last = min(last, state.carried.get(epoch, first) - 1)
            if first <= last:
                offset = self.tracker.done(state.tp, first, last)
                if offset is not None:
                    self._mark_acked(state.tp, offset)
                    advanced = True
        return advanced

    def withdraw(self, acks: Iterable[tuple[str, int, int, int]]) -> None:
        """``(topic, partition, offset, epoch)`` of delivered records that will
        never be acknowledged in this epoch (see OffsetTracker.withdraw); other
        epochs and partitions not held are ignored."""
        partitions = self.partitions
        withdrawn = []
        for topic, partition, offset, epoch in acks:
            state = partitions.get((topic, partition))
            if state is not None and state.delivered_in(epoch, offset):
                withdrawn.append((state.tp, offset))
        self.tracker.withdraw(withdrawn)

    def _mark_acked(self, key: Hashable, offset: int) -> None:
        """Record ``offset`` of a held partition as processed (a later
        take_commits or take_final_commits will send it)."""
        state = self.partitions[key]
        if state.acked is None or offset > state.acked:
            state.acked = offset
            state.dirty = state.dirty or not state.released

    def take_commits(self, now: float) -> CommitRequest:
        """Offsets to commit at monotonic time ``now``: partitions held, not
        released, with acked offsets beyond the committed one, no commit of
        theirs in flight (two could land in the wrong order) and none taken
        within ``commit_interval`` (unless the group is closing). They are
        marked as committing."""
        offsets, epochs = {}, {}
        for tp, state in self.partitions.items():
            if not self._commit_due(state, now):
                continue
            state.dirty = False
            acked = state.uncommitted_offset()
            if acked is not None:
                state.committing = True
                state.commit_taken_at = now
                offsets[tp], epochs[tp] = acked, state.epoch
        return CommitRequest(offsets, epochs)

    def _commit_due(self, state: PartitionState, now: float) -> bool:
        if not state.dirty or state.committing or state.released:
            return False
        return self.closing or now - state.commit_taken_at >= self.commit_interval

    def commits_wanted(self) -> bool:
        """True while take_commits would find something (or will, once a
        commit in flight finished or the commit interval passed)."""
        return any(state.dirty and not state.released for state in self.partitions.values())

    def next_commit_in(self, now: float) -> float | None:
        """Seconds from ``now`` until take_commits finds a partition due (0 if
        one is due now); None when no partition waits for the interval (the
        commits in flight wake the committer when they finish)."""
        waiting = [
            state.commit_taken_at + self.commit_interval - now
            for state in self.partitions.values()
            if state.dirty and not state.committing and not state.released
        ]
        if not waiting:
            return None
        return 0.0 if self.closing else max(min(waiting), 0.0)

    def take_final_commits(self, tps: Iterable[Any]) -> CommitRequest:
        """Offsets of released partitions that were acknowledged beyond the
        committed one: the last commit before they are given up."""
        offsets, epochs = {}, {}
        for tp in tps:
            state = self.partitions.get(tp)
            acked = state.uncommitted_offset() if state is not None else None
            if state is not None and acked is not None:
                state.dirty = False
                state.committing = True
                offsets[tp], epochs[tp] = acked, state.epoch
        return CommitRequest(offsets, epochs)

    def commit_done(self, request: CommitRequest, succeeded: bool) -> None:
        """Book a finished commit. Only the epoch it was taken in counts: after
        a reassignment the old offsets are neither booked nor retried. A
        failed commit of a partition still held (and not released) is retried
        by a later take_commits."""
        for tp, offset in request.offsets.items():
            state = self.partitions.get(tp)
            if state is None or state.epoch != request.epochs[tp]:
                continue
            state.committing = False
            if succeeded:
                if state.committed is None or offset > state.committed:
                    state.committed = offset
            elif not state.released:
                state.dirty = True

    # ---------------------------------------------------------------- status

    def pending(self, tp: Any) -> int:
        """Records of ``tp`` delivered and not acknowledged yet."""
        return self.tracker.pending(tp)

    def drained(self, tps: Iterable[Any]) -> bool:
        """True when every delivered record of these partitions was acknowledged."""
        return all(self.tracker.pending(tp) == 0 for tp in tps)

    def unsettled(self) -> bool:
        """True while a delivered record of a held partition is unacknowledged
        or an acknowledged offset is not committed yet."""
        return any(state.uncommitted() or self.tracker.pending(tp) for tp, state in self.partitions.items())

    def uncommitted_now(self) -> list[Unsaved]:
        """Held partitions whose acknowledged offsets are not committed."""
        return [unsaved for state in self.partitions.values() if (unsaved := state.unsaved()) is not None]

    def flow_control(self, fetch_paused: Iterable[Any], assigned: Iterable[Any]) -> tuple[list[Any], list[Any]]:
        """Decide which partitions to pause and resume, given those the client
        has paused and assigned now. A partition pauses when its buffer could
        not take another poll's worth of records and resumes once it is half
        empty; a handler's pause holds it paused until it ends. Partitions the client keeps paused but this state does not want
        paused (an eager rebalance gave them back in a fresh epoch) resume."""
        batch = self.poll_batch
        for state in self.partitions.values():
            size = len(state.records)
            if state.held_until is not None:
                state.paused = True
            elif state.paused:
                state.paused = not state.may_resume()
            else:
                state.paused = size > state.limit - batch
        fetch_paused = set(fetch_paused)
        assigned = set(assigned)
        to_pause = [
            tp for tp, state in self.partitions.items() if state.paused and tp not in fetch_paused and tp in assigned
        ]
        to_resume = [tp for tp in fetch_paused if not (tp in self.partitions and self.partitions[tp].paused)]
        return sorted(to_pause), sorted(to_resume)
