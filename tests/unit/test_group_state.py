"""GroupState by value: epochs, acks, commits, releases, pause thresholds."""

from collections import namedtuple

import pytest

from gkbroad.kafka.group.state import CommitRequest, GroupState, Unsaved

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset")
A, B = TP("t", 0), TP("t", 1)
NOW = 1000.0  # monotonic seconds; commit_interval is 0 unless a test sets it


def make(limit=100, batch=10):
    return GroupState({"t": limit}, batch)


def fill(state, tp, offsets):
    return state.buffer({tp: [Rec(o) for o in offsets]})


def held(state, tp, offsets):
    """Assign-free helper: buffer and pull ``offsets`` of ``tp``; returns its epoch."""
    fill(state, tp, offsets)
    epoch, records = state.pull(tp, len(offsets))
    assert [r.offset for r in records] == list(offsets)
    return epoch


def test_each_assignment_starts_a_new_epoch_and_an_empty_partition():
    state = make()
    assert [s.epoch for s in state.assign([A, B])] == [1, 1]
    fill(state, A, range(5))
    state.begin_release([A])
    state.release(A)
    assert A not in state.partitions and not state.is_current(A, 1)
    assert [s.epoch for s in state.assign([A])] == [2]
    assert state.pull(A, 10) == (2, [])
    assert state.is_current(A, 2) and not state.is_current(A, 1)


def test_acks_of_an_earlier_epoch_are_ignored():
    state = make()
    state.assign([A])
    old = held(state, A, range(3))
    state.lose([A])
    state.assign([A])
    new = held(state, A, range(3))
    assert not state.ack([("t", 0, 0, old), ("t", 0, 1, old)])
    assert state.partitions[A].acked is None
    assert state.ack([("t", 0, 0, new)])
    assert state.partitions[A].acked == 0


def test_acks_advance_only_the_contiguous_prefix_and_mark_the_partition_dirty():
    state = make()
    state.assign([A])
    epoch = held(state, A, range(5))
    assert not state.ack([("t", 0, 2, epoch), ("t", 0, 1, epoch)])
    assert not state.commits_wanted()
    assert state.ack([("t", 0, 0, epoch)])
    assert state.commits_wanted()
    assert state.take_commits(NOW).offsets == {A: 2}


def test_commits_are_coalesced_and_never_two_in_flight_for_one_partition():
    state = make()
    state.assign([A, B])
    ea, eb = held(state, A, range(10)), held(state, B, range(10))
    state.ack([("t", 0, o, ea) for o in range(3)] + [("t", 1, 0, eb)])
    state.ack([("t", 0, o, ea) for o in range(3, 6)])
    first = state.take_commits(NOW)
    assert first.offsets == {A: 5, B: 0}  # one commit, the latest offset of each
    state.ack([("t", 0, 6, ea)])
    assert not state.take_commits(NOW)  # A's commit is in flight: wait for it
    state.commit_done(first, succeeded=True)
    assert (state.partitions[A].committed, state.partitions[B].committed) == (5, 0)
    assert state.take_commits(NOW).offsets == {A: 6}


def test_a_failed_commit_is_retried_in_the_same_epoch_only():
    state = make()
    state.assign([A])
    epoch = held(state, A, range(3))
    state.ack([("t", 0, 0, epoch)])
    failed = state.take_commits(NOW)
    state.commit_done(failed, succeeded=False)
    retry = state.take_commits(NOW)
    assert retry.offsets == {A: 0}
    state.lose([A])
    state.assign([A])
    state.commit_done(retry, succeeded=True)  # an answer for the old epoch
    assert state.partitions[A].committed is None
    assert not state.take_commits(NOW)


def test_lost_partitions_commit_nothing_and_report_their_unacknowledged_records():
    state = make()
    state.assign([A])
    epoch = held(state, A, range(4))
    state.ack([("t", 0, 0, epoch)])
    assert state.lose([A]) == [(A, 3)]
    assert not state.take_commits(NOW)
    assert not state.take_final_commits([A])
    assert state.unsaved == [Unsaved(A, 0, 0)]  # acknowledged, never committed: the next owner reads it again
    assert state.pullable() == []


def test_release_while_acks_are_pending_waits_for_them_then_commits_once():
    state = make()
    state.assign([A, B])
    epoch = held(state, A, range(4))
    fill(state, A, range(4, 8))  # buffered, never delivered
    assert state.begin_release([A]) == [A]
    assert state.pullable() == [("t", 1)]
    assert state.pull(A, 10) == (epoch, [])  # the undelivered buffer is gone
    assert state.is_current(A, epoch)  # still held: what was delivered must be handled
    assert not state.drained([A])
    state.ack([("t", 0, o, epoch) for o in range(4)])
    assert state.drained([A])
    assert not state.take_commits(NOW)  # released: only the final commit sends it
    final = state.take_final_commits([A])
    assert final.offsets == {A: 3}
    state.commit_done(final, succeeded=True)
    assert state.release(A) == 4  # where a consumer that keeps it resumes
    assert state.unsaved == []
    assert not state.is_current(A, epoch)


def test_release_with_an_uncommitted_ack_remembers_what_will_be_read_again():
    state = make()
    state.assign([A])
    fill(state, A, range(10, 20))
    epoch, _ = state.pull(A, 10)
    state.ack([("t", 0, o, epoch) for o in range(10, 13)])
    request = state.take_commits(NOW)
    state.commit_done(request, succeeded=True)  # 10..12 committed
    state.ack([("t", 0, o, epoch) for o in range(13, 16)])
    state.begin_release([A])
    state.commit_done(state.take_final_commits([A]), succeeded=False)
    state.release(A)
    assert state.unsaved == [Unsaved(A, 13, 15)]
    assert state.unsaved[0].records == 3


def test_restart_offset_is_the_first_unprocessed_record():
    state = make()
    state.assign([A])
    fill(state, A, range(7, 12))
    assert state.partitions[A].restart_offset() == 7
    epoch, _ = state.pull(A, 5)
    state.ack([("t", 0, 7, epoch), ("t", 0, 8, epoch)])
    state.begin_release([A])
    assert state.release(A) == 9


def test_unsettled_until_every_delivered_record_is_acked_and_committed():
    state = make()
    state.assign([A])
    assert not state.unsettled()
    epoch = held(state, A, range(2))
    assert state.unsettled()
    state.ack([("t", 0, 0, epoch), ("t", 0, 1, epoch)])
    assert state.unsettled()
    state.commit_done(state.take_commits(NOW), succeeded=True)
    assert not state.unsettled()


def test_withdrawn_records_settle_the_partition_without_being_committed_past():
    state = make()
    state.assign([A])
    old = held(state, A, range(1))
    state.lose([A])
    state.assign([A])
    epoch = held(state, A, range(4))
    state.withdraw([("t", 0, 2, epoch), ("t", 0, 3, old)])  # the other epoch's is ignored
    state.ack([("t", 0, 0, epoch), ("t", 0, 1, epoch)])
    assert state.pending(A) == 1 and not state.drained([A])
    state.ack([("t", 0, 3, epoch)])
    assert state.drained([A])
    assert state.take_commits(NOW).offsets == {A: 1}
    state.commit_done(CommitRequest({A: 1}, {A: epoch}), succeeded=True)
    assert not state.unsettled()


def test_closing_stops_every_pull():
    state = make()
    state.assign([A])
    fill(state, A, range(3))
    state.drop_buffers()
    assert state.pullable() == []
    assert state.pull(A, 3) == (1, [])


def test_refetched_records_below_the_buffer_are_dropped():
    state = make()
    state.assign([A])
    fill(state, A, range(5))
    arrived, rewound = fill(state, A, range(3, 8))
    assert arrived and rewound == [(A, 5)]
    assert [r.offset for r in state.partitions[A].records] == list(range(8))


def test_pause_when_a_poll_could_overflow_and_resume_when_half_empty():
    state = make(limit=40, batch=10)
    state.assign([A, B])
    fill(state, A, range(31))  # 31 > 40 - 10: one more poll could overflow
    assert state.flow_control(fetch_paused=[], assigned=[A, B]) == ([A], [])
    state.pull(A, 10)  # 21 left: above half, stays paused
    assert state.flow_control(fetch_paused=[A], assigned=[A, B]) == ([], [])
    state.pull(A, 1)  # 20: half empty
    assert state.flow_control(fetch_paused=[A], assigned=[A, B]) == ([], [A])


def test_a_partition_paused_by_the_client_but_not_by_the_state_resumes():
    state = make()
    state.assign([A])
    # kafka-python kept it paused across an eager rebalance; the new epoch is empty.
    assert state.flow_control(fetch_paused=[A, B], assigned=[A]) == ([], [A, B])
