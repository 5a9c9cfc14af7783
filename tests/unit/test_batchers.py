"""Batchers: batches per batch_key by size and timeout, flush mode, flush on stop, several batchers."""

import time

from gkbroad import testing
from tests.helpers.engine_support import RecordingPipeline
from tests.helpers.support import wait_until

ONE_PROCESSOR = {"default": {"concurrency": 1}}  # keeps arrival order at the batcher deterministic
NEVER = 60_000  # a batch_timeout no test waits for


class KeyedByFirstLetter(RecordingPipeline):
    def on_message(self, message):
        return message.put_batch_key(message.data[0])


def batches_summary(pipeline):
    return sorted((call.info.batch_key, call.info.trigger, tuple(call.data)) for call in pipeline.batches)


def test_batch_size_is_counted_per_batch_key(run_testing):
    pipeline = run_testing(
        KeyedByFirstLetter, processors=ONE_PROCESSOR, batchers={"default": {"batch_size": 3, "batch_timeout": NEVER}}
    )

    ref = testing.test_batch(pipeline, ["a1", "b1", "a2", "b2", "a3", "b3"])
    successful, failed = testing.wait_for_ack(pipeline, ref)

    assert len(successful) == 6 and failed == []
    assert batches_summary(pipeline) == [("a", "size", ("a1", "a2", "a3")), ("b", "size", ("b1", "b2", "b3"))]


def test_a_full_batch_leaves_at_once_and_the_rest_on_timeout(run_testing):
    pipeline = run_testing(
        KeyedByFirstLetter, processors=ONE_PROCESSOR, batchers={"default": {"batch_size": 3, "batch_timeout": 100}}
    )

    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, [f"a{i}" for i in range(7)]))

    assert [(c.info.trigger, c.info.size) for c in pipeline.batches] == [("size", 3), ("size", 3), ("timeout", 1)]
    assert [c.data for c in pipeline.batches] == [["a0", "a1", "a2"], ["a3", "a4", "a5"], ["a6"]]


def test_batch_timeout_sends_each_key_partial_batch(run_testing):
    pipeline = run_testing(KeyedByFirstLetter, batchers={"default": {"batch_size": 100, "batch_timeout": 100}})

    began = time.monotonic()
    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["a1", "b1", "a2", "b2"]))

    assert time.monotonic() - began >= 0.09, "a partial batch left before its batch_timeout"
    assert batches_summary(pipeline) == [("a", "timeout", ("a1", "a2")), ("b", "timeout", ("b1", "b2"))]


def test_batch_info_describes_the_batch(run_testing):
    pipeline = run_testing(KeyedByFirstLetter, batchers={"default": {"batch_size": 2, "batch_timeout": NEVER}})

    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["x1", "x2"]))

    (call,) = pipeline.batches
    assert call.batcher == "default"
    info = call.info
    assert (info.batcher, info.batch_key, info.partition, info.size, info.trigger) == ("default", "x", None, 2, "size")


def test_a_flush_mode_message_sends_its_batch_at_once(run_testing):
    pipeline = run_testing(
        KeyedByFirstLetter, processors=ONE_PROCESSOR, batchers={"default": {"batch_size": 100, "batch_timeout": NEVER}}
    )

    bulk = testing.test_batch(pipeline, ["a1", "a2", "b1"], batch_mode="bulk")
    flush = testing.test_message(pipeline, "a3", batch_mode="flush")
    successful, _ = testing.wait_for_ack(pipeline, flush)

    assert [m.data for m in successful] == ["a3"]
    assert batches_summary(pipeline) == [("a", "flush", ("a1", "a2", "a3"))]  # b's batch still waits
    pipeline.stop()
    testing.wait_for_ack(pipeline, bulk)


def test_stop_flushes_partial_batches(run_testing):
    pipeline = run_testing(KeyedByFirstLetter, batchers={"default": {"batch_size": 100, "batch_timeout": NEVER}})
    ref = testing.test_batch(pipeline, ["a1", "a2", "b1"], batch_mode="bulk")
    wait_until(lambda: len(pipeline.handled) == 3, what="messages to reach the batcher")
    assert pipeline.batches == []

    assert pipeline.stop() is True

    successful, failed = testing.wait_for_ack(pipeline, ref, timeout=0.5)
    assert len(successful) == 3 and failed == []
    assert batches_summary(pipeline) == [("a", "flush", ("a1", "a2")), ("b", "flush", ("b1",))]


class EvenOdd(RecordingPipeline):
    def on_message(self, message):
        return message.put_batcher("even" if message.data % 2 == 0 else "odd")


def test_messages_go_to_the_batcher_they_name(run_testing):
    pipeline = run_testing(
        EvenOdd,
        batchers={
            "even": {"batch_size": 2, "batch_timeout": 50},
            "odd": {"batch_size": 3, "batch_timeout": 50, "concurrency": 2},
        },
    )

    successful, _ = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, range(10)))

    assert sorted(m.data for m in successful) == list(range(10))
    seen = {"even": [], "odd": []}
    for call in pipeline.batches:
        assert call.batcher == call.info.batcher
        assert len(call.data) <= {"even": 2, "odd": 3}[call.batcher]
        seen[call.batcher].extend(call.data)
    assert sorted(seen["even"]) == [0, 2, 4, 6, 8]
    assert sorted(seen["odd"]) == [1, 3, 5, 7, 9]


class ToMissingBatcher(RecordingPipeline):
    def on_message(self, message):
        return message.put_batcher("nope") if message.data == "lost" else message


def test_a_message_sent_to_an_unknown_batcher_fails_with_a_clear_reason(run_testing):
    pipeline = run_testing(ToMissingBatcher, batchers={"default": {"batch_size": 1}})

    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["ok", "lost"]))

    assert [m.data for m in successful] == ["ok"]
    (message,) = failed
    assert "'nope'" in message.failure_reason and "does not exist" in message.failure_reason
    assert "default" in message.failure_reason  # names the batchers that do exist
    assert pipeline.failed_counts == {"lost": 1}


def test_without_batchers_a_message_naming_a_batcher_fails(run_testing):
    pipeline = run_testing(ToMissingBatcher)

    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["ok", "lost"]))

    assert [m.data for m in successful] == ["ok"]
    assert [m.data for m in failed] == ["lost"]
    assert "'nope'" in failed[0].failure_reason and "none" in failed[0].failure_reason


def test_a_batcher_inbox_takes_a_chunk_s_part_as_one_item_and_holds_at_most_its_max_demand_messages():
    from gkbroad.engine.stages import BatcherInbox
    from gkbroad.message import Acknowledger, Message

    def messages(count):
        return [Message(data=i, acknowledger=Acknowledger(None, None, i)) for i in range(count)]

    inbox = BatcherInbox(limit=100, piece=10)
    inbox.put(messages(25))
    assert [len(item) for item in [inbox.queue.get() for _ in range(inbox.queue.qsize())]] == [10, 10, 5]
    assert inbox.queue.maxsize * inbox.piece == 100
    small = BatcherInbox(limit=7, piece=10)  # a max_demand below the processors' chunks: pieces of 7, one queued
    small.put(messages(7))
    assert small.queue.full() and small.queue.maxsize * small.piece == 7
