"""Value tests of OffsetTracker: what becomes committable after which acks."""

import random
import time

import pytest

from gkbroad.kafka.group.offset_tracker import OffsetTracker

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

TP = ("orders", 0)
OTHER = ("orders", 1)


def acks(tp, *offsets):
    return [(tp, offset) for offset in offsets]


def done(tracker, tp_offsets):
    """Acknowledge (tp, offset) pairs one offset at a time; {tp: committable} of those that advanced."""
    advanced = {}
    for tp, offset in tp_offsets:
        committable = tracker.done(tp, offset, offset)
        if committable is not None:
            advanced[tp] = committable
    return advanced


def test_in_order_acks_advance_to_the_last_acked_offset():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1, 2])
    assert done(tracker, acks(TP, 0)) == {TP: 0}
    assert done(tracker, acks(TP, 1, 2)) == {TP: 2}
    assert tracker.pending(TP) == 0


def test_out_of_order_acks_are_held_until_contiguous():
    tracker = OffsetTracker()
    tracker.delivered(TP, [10, 11, 12, 13])
    assert done(tracker, acks(TP, 12, 13)) == {}
    assert tracker.pending(TP) == 2
    assert done(tracker, acks(TP, 11)) == {}
    assert done(tracker, acks(TP, 10)) == {TP: 13}
    assert tracker.pending(TP) == 0


def test_gaps_between_delivered_offsets_do_not_block():
    # Compacted topics and transaction markers leave holes in the offsets.
    tracker = OffsetTracker()
    tracker.delivered(TP, [3, 7, 8, 20])
    assert done(tracker, acks(TP, 3)) == {TP: 3}
    assert done(tracker, acks(TP, 8)) == {}
    assert done(tracker, acks(TP, 7)) == {TP: 8}
    assert done(tracker, acks(TP, 20)) == {TP: 20}


def test_an_undelivered_offset_inside_a_gap_is_unknown_and_ignored():
    tracker = OffsetTracker()
    tracker.delivered(TP, [3, 7])
    assert done(tracker, acks(TP, 5)) == {}
    assert tracker.pending(TP) == 2


def test_duplicate_acks_and_duplicate_deliveries_are_ignored():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1])
    tracker.delivered(TP, [1])  # already delivered
    assert tracker.pending(TP) == 2
    assert done(tracker, acks(TP, 1, 1)) == {}
    assert tracker.pending(TP) == 1
    assert done(tracker, acks(TP, 0, 0, 1)) == {TP: 1}
    assert done(tracker, acks(TP, 0, 1)) == {}


def test_acks_of_unknown_partitions_and_offsets_are_ignored():
    tracker = OffsetTracker()
    tracker.delivered(TP, [5])
    assert done(tracker, acks(OTHER, 5) + acks(TP, 4, 6)) == {}
    assert tracker.pending(TP) == 1
    assert tracker.pending(OTHER) == 0


def test_partitions_are_independent_and_only_advanced_ones_are_returned():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1])
    tracker.delivered(OTHER, [0, 1])
    assert done(tracker, acks(TP, 0, 1) + acks(OTHER, 1)) == {TP: 1}
    assert done(tracker, acks(OTHER, 0)) == {OTHER: 1}


def test_forget_drops_history_and_later_acks():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1, 2])
    done(tracker, acks(TP, 1))
    tracker.forget(TP)
    assert tracker.pending(TP) == 0
    assert done(tracker, acks(TP, 0, 1, 2)) == {}
    tracker.forget(TP)  # forgetting twice is harmless


def test_reassignment_after_forget_starts_fresh_even_at_lower_offsets():
    # Another member may have committed less than we processed: the partition
    # comes back starting below the offsets we had delivered before.
    tracker = OffsetTracker()
    tracker.delivered(TP, [100, 101])
    tracker.forget(TP)
    tracker.delivered(TP, [90, 91])
    assert tracker.pending(TP) == 2
    assert done(tracker, acks(TP, 100)) == {}
    assert done(tracker, acks(TP, 90, 91)) == {TP: 91}


def test_deliveries_after_acks_continue_from_the_frontier():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1])
    assert done(tracker, acks(TP, 0, 1)) == {TP: 1}
    tracker.delivered(TP, [2, 3])
    assert done(tracker, acks(TP, 3)) == {}
    assert done(tracker, acks(TP, 2)) == {TP: 3}


def test_large_volume_shuffled_acks_end_at_the_last_offset_quickly():
    tracker = OffsetTracker()
    rng = random.Random(7)
    offsets = [o for o in range(0, 300_000) if o % 7]  # gaps everywhere
    batches = [offsets[i : i + 500] for i in range(0, len(offsets), 500)]
    start = time.perf_counter()
    for batch in batches:
        tracker.delivered(TP, batch)
    shuffled = list(offsets)
    # Keep acks roughly local, as with many processors: shuffle in windows.
    window = 5_000
    for i in range(0, len(shuffled), window):
        part = shuffled[i : i + window]
        rng.shuffle(part)
        shuffled[i : i + window] = part
    committed = -1
    for i in range(0, len(shuffled), 250):
        advanced = done(tracker, acks(TP, *shuffled[i : i + 250]))
        if TP in advanced:
            assert advanced[TP] > committed
            committed = advanced[TP]
    elapsed = time.perf_counter() - start
    assert committed == offsets[-1]
    assert tracker.pending(TP) == 0
    # Generous bound: only catches accidental quadratic behaviour.
    assert elapsed < 10


def test_withdrawn_offsets_are_not_pending_and_never_passed():
    tracker = OffsetTracker()
    tracker.delivered(TP, [1, 2, 3, 4])
    tracker.withdraw([(TP, 3), (TP, 9)])  # 9 was never delivered: ignored

    assert tracker.pending(TP) == 3
    assert tracker.done(TP, 1, 2) == 2
    assert tracker.done(TP, 4, 4) is None  # 3 was withdrawn: never passed
    assert tracker.pending(TP) == 0
    assert tracker.done(TP, 4, 4) is None


def test_a_withdrawn_offset_acknowledged_after_all_counts_once():
    tracker = OffsetTracker()
    tracker.delivered(TP, [1, 2])
    tracker.withdraw([(TP, 1), (TP, 1)])

    assert tracker.pending(TP) == 1
    assert tracker.done(TP, 1, 2) == 2
    assert tracker.pending(TP) == 0


def test_a_range_acked_from_the_lowest_unacked_offset_advances_to_its_end():
    tracker = OffsetTracker()
    tracker.delivered(TP, list(range(100, 600)))
    assert tracker.done(TP, 100, 349) == 349
    assert tracker.pending(TP) == 250
    assert tracker.done(TP, 350, 599) == 599
    assert tracker.pending(TP) == 0


def test_a_range_above_a_gap_is_held_until_the_gap_closes():
    tracker = OffsetTracker()
    tracker.delivered(TP, list(range(0, 10)))
    assert tracker.done(TP, 5, 9) is None
    assert tracker.pending(TP) == 5
    assert tracker.done(TP, 0, 3) == 3
    assert tracker.done(TP, 4, 4) == 9
    assert tracker.pending(TP) == 0


def test_a_range_over_offsets_never_delivered_books_only_the_delivered_ones():
    # A compacted topic: 3..5 and 8 were never delivered.
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1, 2, 6, 7, 9])
    assert tracker.done(TP, 0, 7) == 7
    assert tracker.pending(TP) == 1
    assert tracker.done(TP, 8, 9) == 9


def test_contiguous_and_gapped_deliveries_mix():
    tracker = OffsetTracker()
    tracker.delivered(TP, [0, 1, 2])
    tracker.delivered(TP, [3, 4])  # continues the run
    tracker.delivered(TP, [7, 9, 10])  # gaps at 5, 6 and 8
    tracker.delivered(TP, [2, 3, 11])  # 2 and 3 are duplicates
    assert tracker.pending(TP) == 9
    assert tracker.done(TP, 9, 11) is None
    assert tracker.done(TP, 0, 4) == 4
    assert tracker.done(TP, 7, 7) == 11
    assert tracker.pending(TP) == 0


def test_random_ranges_match_a_per_offset_model():
    """Acks as ranges, in any order, over delivered offsets with gaps: the tracker's
    committable offset is always the one a plain per-offset model computes."""
    rng = random.Random(11)
    for _ in range(300):
        tracker = OffsetTracker()
        delivered = sorted(rng.sample(range(200), rng.randint(1, 150)))
        for i in range(0, len(delivered), 17):
            tracker.delivered(TP, delivered[i : i + 17])
        ranges = []
        start = 0
        while start < 200:
            end = min(199, start + rng.randint(0, 12))
            ranges.append((start, end))
            start = end + 1
        rng.shuffle(ranges)
        unacked = set(delivered)
        committed = None
        for first, last in ranges:
            unacked -= set(range(first, last + 1))
            advanced = tracker.done(TP, first, last)
            lowest = min(unacked, default=None)
            expected = max((o for o in delivered if lowest is None or o < lowest), default=None)
            if advanced is not None:
                committed = advanced
            assert committed == expected
            assert tracker.pending(TP) == len(unacked)
        assert committed == delivered[-1]
