"""A handler's pause of a partition, by value: GroupState.rewind and OffsetTracker.rewind.

After a rewind at offset X the partition keeps its assignment (commits go on), what was handed
out from X on is stale and forgotten, the earlier offsets still count when their acks arrive,
and X is handed out again once the hold ends; a commit taken before the rewind is still booked.
"""

from collections import namedtuple

import pytest

import gkbroad
from gkbroad import testing
from gkbroad.errors import ConfigError
from gkbroad.kafka.group.offset_tracker import OffsetTracker
from gkbroad.kafka.group.state import GroupState

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset")
A = TP("t", 0)
INF = float("inf")


def pulled(state, offsets):
    state.buffer({A: [Rec(o) for o in offsets]})
    epoch, records = state.pull(A, len(offsets))
    assert [r.offset for r in records] == list(offsets)
    return epoch


def test_the_tracker_forgets_what_was_delivered_from_the_rewind_on():
    tracker = OffsetTracker()
    tracker.delivered(A, list(range(10)))
    assert tracker.done(A, 0, 2) == 2
    assert tracker.done(A, 6, 6) is None  # early, above the gap
    tracker.withdraw([(A, 7)])
    tracker.rewind(A, 5)
    assert tracker.pending(A) == 2  # 3 and 4
    tracker.delivered(A, [5, 6, 7])  # handed out again: counted afresh
    assert tracker.pending(A) == 5
    assert tracker.done(A, 3, 7) == 7


def test_a_rewind_makes_later_records_stale_keeps_earlier_acks_and_delivers_again_after_the_hold():
    state = GroupState({"t": 100}, 10)
    state.assign([A])
    first = pulled(state, range(10))
    assert state.rewind(A, first, 4, INF, "busy")
    assert not state.rewind(A, first, 6, INF, "busy")  # stale already: nothing changes
    assert state.take_seeks() == [(A, 4)] and state.take_seeks() == []
    assert state.is_current(A, first, 3) and not state.is_current(A, first, 4)
    assert state.pending(A) == 4  # 0..3
    # Acks of the old delivery: below the rewind they count, from it on they are ignored.
    assert state.ack([("t", 0, o, first) for o in range(6)])
    assert state.partitions[A].acked == 3 and state.pending(A) == 0
    # Held: fetched records are dropped and flow control keeps it paused.
    state.buffer({A: [Rec(4)]})
    assert state.pull(A, 10)[1] == []
    assert state.flow_control([], [A]) == ([A], [])
    assert state.end_holds(100.0) == []
    assert state.resume(A) and state.end_holds(100.0) == [A] and not state.resume(A)
    assert state.flow_control([A], [A]) == ([], [A])
    second = pulled(state, range(4, 8))
    assert second != first
    assert state.ack([("t", 0, o, second) for o in range(4, 8)])
    assert state.partitions[A].acked == 7


def test_a_commit_taken_before_a_rewind_is_booked_after_it():
    state = GroupState({"t": 100}, 10)
    state.assign([A])
    epoch = pulled(state, range(5))
    state.ack([("t", 0, o, epoch) for o in range(2)])
    request = state.take_commits(0.0)
    assert state.rewind(A, epoch, 3, 5.0, "")
    state.commit_done(request, True)
    assert state.partitions[A].committed == 1 and not state.partitions[A].committing
    assert state.end_holds(4.9) == [] and state.end_holds(5.0) == [A]


class Pauses(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        if message.data == "pause":
            raise gkbroad.PausePartition(1.0, "busy")
        raise RuntimeError("down")


def test_without_a_producer_that_can_go_back_a_pause_or_a_later_retry_fails_the_message():
    retry = {"max_attempts": 2, "backoff": 0, "mode": "topic"}
    with testing.running(Pauses, name="no-pause", processors={"default": {"retry": retry}}) as pipeline:
        _, (paused,) = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "pause"))
        _, (retried,) = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "other"))
    assert "cannot pause what it produces" in paused.failure_reason
    assert "retry mode 'topic': TestAcknowledger cannot retry later" in retried.failure_reason


def test_pause_partition_refuses_a_negative_time():
    with pytest.raises(ConfigError, match="seconds must be None or a number >= 0, got -1"):
        gkbroad.PausePartition(-1)
