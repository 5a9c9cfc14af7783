"""Holdback by value: what the librdkafka client keeps of a partition gkbroad paused, and when librdkafka
itself is paused and resumed.

A paused partition's records are held (not handed to gkbroad) until its resume hands them out first, in
order; librdkafka is paused once a poll batch is held and resumed only if it was; a seek, a revocation
or a loss drops what was held, and a revoked partition that librdkafka had paused is to be resumed.
"""

from gkbroad.kafka.client.rdkafka_holdback import Holdback

A, B = ("t", 0), ("t", 1)
BATCH = 4


def offsets(fetched):
    return {tp: list(run) for tp, run in fetched.items()}


def test_records_of_unpaused_partitions_go_straight_through():
    holdback = Holdback()
    delivered, to_stop = holdback.hold({A: [0, 1], B: [5]}, BATCH)
    assert (offsets(delivered), to_stop) == ({A: [0, 1], B: [5]}, [])
    assert holdback.take_ready() == {}


def test_a_paused_partition_is_held_and_librdkafka_paused_once_a_batch_is_held():
    holdback = Holdback()
    holdback.pause([A])
    assert holdback.paused == {A}
    delivered, to_stop = holdback.hold({A: [0, 1], B: [5]}, BATCH)
    assert (offsets(delivered), to_stop) == ({B: [5]}, [])
    assert not holdback.stopped(A)
    delivered, to_stop = holdback.hold({A: [2, 3, 4]}, BATCH)
    assert (delivered, to_stop) == ({}, [A])  # 5 held >= 4: pause it in librdkafka, once
    assert holdback.stopped(A)
    # What a consume() brought before librdkafka's pause took effect is held too, without a second pause.
    assert holdback.hold({A: [5]}, BATCH) == ({}, [])


def test_a_resume_hands_the_held_records_out_first_in_order_and_resumes_librdkafka_if_it_was_paused():
    holdback = Holdback()
    holdback.pause([A, B])
    holdback.hold({A: [0, 1, 2, 3], B: [7]}, BATCH)
    assert holdback.resume([A]) == [A]  # librdkafka had paused A
    assert holdback.resume([B]) == []  # B never reached a batch: librdkafka kept fetching it
    assert holdback.paused == set()
    assert holdback.take_ready() == {A: [0, 1, 2, 3], B: [7]}
    assert holdback.take_ready() == {}
    assert offsets(holdback.hold({A: [4], B: [8]}, BATCH)[0]) == {A: [4], B: [8]}


def test_a_pause_before_the_next_poll_holds_the_ready_records_again_in_front():
    holdback = Holdback()
    holdback.pause([A])
    holdback.hold({A: [0, 1]}, BATCH)
    holdback.resume([A])
    holdback.pause([A])
    assert holdback.take_ready() == {}
    holdback.hold({A: [2]}, BATCH)
    holdback.resume([A])
    assert holdback.take_ready() == {A: [0, 1, 2]}


def test_a_seek_drops_what_was_held_and_keeps_the_pauses():
    holdback = Holdback()
    holdback.pause([A, B])
    holdback.hold({A: [0, 1, 2, 3], B: [7]}, BATCH)
    holdback.discard(A)
    holdback.discard(B)
    assert holdback.paused == {A, B} and holdback.stopped(A)
    holdback.hold({A: [1]}, BATCH)  # fetched again from the new position
    assert holdback.resume([A, B]) == [A]
    assert holdback.take_ready() == {A: [1]}


def test_a_seek_after_a_resume_drops_the_ready_records():
    holdback = Holdback()
    holdback.pause([A])
    holdback.hold({A: [0, 1]}, BATCH)
    holdback.resume([A])
    holdback.discard(A)
    assert holdback.take_ready() == {}


def test_revoked_or_lost_partitions_drop_their_records_and_pauses_and_name_those_librdkafka_paused():
    holdback = Holdback()
    holdback.pause([A, B])
    holdback.hold({A: [0, 1, 2, 3], B: [7]}, BATCH)
    holdback.resume([B])
    assert holdback.forget([A, B]) == [A]  # to resume in librdkafka before it goes
    assert (holdback.paused, holdback.stopped(A), holdback.take_ready()) == (set(), False, {})
    # Assigned again: nothing of the old assignment is handed out, and it is not paused.
    assert offsets(holdback.hold({A: [2]}, BATCH)[0]) == {A: [2]}


def test_clear_forgets_everything():
    holdback = Holdback()
    holdback.pause([A])
    holdback.hold({A: [0, 1, 2, 3]}, BATCH)
    holdback.clear()
    assert (holdback.paused, holdback.stopped(A), holdback.resume([A]), holdback.take_ready()) == (
        set(),
        False,
        [],
        {},
    )
