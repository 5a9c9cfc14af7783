"""User code never kills the pipeline: a callback that raises or returns the
wrong thing fails the messages it was given, with the reason, and they go
through handle_failed exactly once before being acknowledged as failed."""

import logging
from collections import Counter

import pytest

from gkbroad import testing
from tests.helpers.engine_support import RecordingPipeline

BOOM = "boom"
DATA = ["a", "b", BOOM, "c", "d", "e"]


class Boom(Exception):
    pass


def raise_boom(where):
    def fail(_given):
        raise Boom(where)

    return fail


class Misbehaving(RecordingPipeline):
    """Any call that is given the message "boom" returns `<callback>_result(what it was given)`
    instead of behaving; the data of every such call is kept in `bad_groups`."""

    message_result = batch_result = prepare_result = None

    def __init__(self, **options):
        self.bad_groups = []
        super().__init__(**options)

    def _misbehave(self, result, given, messages):
        if result is None or all(m.data != BOOM for m in messages):
            return given
        self.bad_groups.append([m.data for m in messages])
        return result(given)

    def on_message(self, message):
        return self._misbehave(type(self).message_result, message, [message])

    def on_batch(self, messages, info):
        return self._misbehave(type(self).batch_result, messages, messages)

    def prepare_messages(self, messages, context):
        return self._misbehave(type(self).prepare_result, messages, messages)


def misbehaving(**results):
    return type("Misbehaving", (Misbehaving,), {name: staticmethod(fn) for name, fn in results.items()})


def run_misbehaving(run_testing, cls, batched, max_demand=3):
    options = {"processors": {"default": {"concurrency": 2, "max_demand": max_demand}}}
    if batched:
        options["batchers"] = {"default": {"batch_size": 3, "batch_timeout": 20}}
    pipeline = run_testing(cls, **options)
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))
    return pipeline, successful, failed


def assert_failed_exactly_the_bad_groups(pipeline, successful, failed):
    expected = {data for group in pipeline.bad_groups for data in group}
    assert BOOM in expected
    assert {m.data for m in failed} == expected
    assert {m.data for m in successful} == set(DATA) - expected
    assert pipeline.failed_counts == Counter(dict.fromkeys(expected, 1)), "handle_failed not called once per message"


def assert_pipeline_keeps_going(pipeline):
    successful, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "after"))
    assert [m.data for m in successful] == ["after"] and failed == []


EXCEPTION_CASES = [
    pytest.param(
        misbehaving(message_result=raise_boom("handle_message")), "handle_message", False, id="handle_message"
    ),
    pytest.param(
        misbehaving(message_result=raise_boom("handle_message")), "handle_message", True, id="handle_message-batched"
    ),
    pytest.param(
        misbehaving(prepare_result=raise_boom("prepare_messages")), "prepare_messages", False, id="prepare_messages"
    ),
    pytest.param(
        misbehaving(prepare_result=raise_boom("prepare_messages")),
        "prepare_messages",
        True,
        id="prepare_messages-batched",
    ),
    pytest.param(misbehaving(batch_result=raise_boom("handle_batch")), "handle_batch", True, id="handle_batch"),
]


@pytest.mark.parametrize("cls, callback, batched", EXCEPTION_CASES)
def test_an_exception_fails_the_messages_the_callback_was_given(run_testing, caplog, cls, callback, batched):
    pipeline, successful, failed = run_misbehaving(run_testing, cls, batched)

    assert_failed_exactly_the_bad_groups(pipeline, successful, failed)
    for message in failed:
        assert isinstance(message.failure_reason, Boom) and str(message.failure_reason) == callback
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and callback in r.getMessage()]
    assert logged and all(r.exc_info for r in logged), "the exception was not logged with its traceback"
    assert_pipeline_keeps_going(pipeline)


WRONG_RETURN_CASES = [
    pytest.param(
        misbehaving(message_result=lambda m: None),
        False,
        "handle_message must return a Message, got NoneType",
        id="handle_message-None",
    ),
    pytest.param(
        misbehaving(message_result=lambda m: m.data),
        True,
        "handle_message must return a Message, got str",
        id="handle_message-data",
    ),
    pytest.param(
        misbehaving(batch_result=lambda ms: None),
        True,
        "handle_batch must return a list of the 1 messages it was given, got NoneType",
        id="handle_batch-None",
    ),
    pytest.param(
        misbehaving(batch_result=tuple),
        True,
        "handle_batch must return a list of the 1 messages it was given, got tuple",
        id="handle_batch-tuple",
    ),
    pytest.param(
        misbehaving(batch_result=lambda ms: ms[1:]),
        True,
        "handle_batch must return a list of the 1 messages it was given, got 0",
        id="handle_batch-short",
    ),
    pytest.param(
        misbehaving(prepare_result=lambda ms: [m.data for m in ms]),
        False,
        "prepare_messages must return a list of the 1 messages it was given, got an item of type str",
        id="prepare_messages-data",
    ),
    pytest.param(
        misbehaving(prepare_result=lambda ms: ms + ms),
        False,
        "prepare_messages must return a list of the 1 messages it was given, got 2",
        id="prepare_messages-long",
    ),
]


@pytest.mark.parametrize("cls, batched, reason", WRONG_RETURN_CASES)
def test_a_wrong_return_value_fails_the_messages_with_a_reason_saying_why(run_testing, cls, batched, reason):
    pipeline = run_testing(
        cls,
        processors={"default": {"concurrency": 2, "max_demand": 1}},
        batchers={"default": {"batch_size": 1}} if batched else {},
    )
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))

    assert_failed_exactly_the_bad_groups(pipeline, successful, failed)
    (message,) = failed
    assert message.failure_reason.startswith(reason)
    assert_pipeline_keeps_going(pipeline)


class MarksBoomFailed(RecordingPipeline):
    def on_message(self, message):
        return message.failed("not today") if message.data == BOOM else message


def test_a_message_marked_failed_skips_the_batcher_and_goes_to_handle_failed(run_testing):
    pipeline = run_testing(MarksBoomFailed, batchers={"default": {"batch_size": 2, "batch_timeout": 20}})
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))

    assert [(m.data, m.failure_reason) for m in failed] == [(BOOM, "not today")]
    assert len(successful) == len(DATA) - 1
    assert BOOM not in [d for call in pipeline.batches for d in call.data]
    assert pipeline.failed_counts == {BOOM: 1}


class FailsHalfOfEachBatch(RecordingPipeline):
    def on_batch(self, messages, info):
        return [m.failed("odd") if m.data % 2 else m for m in messages]


def test_messages_handle_batch_returns_failed_go_to_handle_failed(run_testing):
    pipeline = run_testing(FailsHalfOfEachBatch, batchers={"default": {"batch_size": 4, "batch_timeout": 20}})
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, range(8)))

    assert sorted(m.data for m in successful) == [0, 2, 4, 6]
    assert sorted(m.data for m in failed) == [1, 3, 5, 7]
    assert pipeline.failed_counts == Counter({1: 1, 3: 1, 5: 1, 7: 1})


class HandleFailedRaises(MarksBoomFailed):
    def handle_failed(self, messages, context):
        super().handle_failed(messages, context)
        raise Boom("handle_failed")


class HandleFailedReturnsNone(MarksBoomFailed):
    def handle_failed(self, messages, context):
        super().handle_failed(messages, context)


@pytest.mark.parametrize("cls", [HandleFailedRaises, HandleFailedReturnsNone])
def test_a_misbehaving_handle_failed_still_acknowledges_the_messages_as_failed(run_testing, cls):
    pipeline = run_testing(cls)
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))

    assert [(m.data, m.failure_reason) for m in failed] == [(BOOM, "not today")]
    assert len(successful) == len(DATA) - 1
    assert pipeline.failed_counts == {BOOM: 1}
    assert_pipeline_keeps_going(pipeline)


def partition_by_fails_on_boom(message):
    if message.data == BOOM:
        raise Boom("partition_by")
    return len(message.data)


def test_processor_partition_by_raising_fails_that_message(run_testing):
    pipeline = run_testing(
        RecordingPipeline, processors={"default": {"concurrency": 3, "partition_by": partition_by_fails_on_boom}}
    )
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))

    assert [m.data for m in failed] == [BOOM]
    assert isinstance(failed[0].failure_reason, Boom)
    assert BOOM not in [data for _, data in pipeline.handled], "a message that could not be routed was handled"
    assert sorted(m.data for m in successful) == sorted(set(DATA) - {BOOM})
    assert pipeline.failed_counts == {BOOM: 1}
    assert_pipeline_keeps_going(pipeline)


class BoomHasItsOwnBatch(RecordingPipeline):
    def on_message(self, message):
        return message.put_batch_key(message.data == BOOM)


def test_batcher_partition_by_raising_fails_that_batch(run_testing):
    pipeline = run_testing(
        BoomHasItsOwnBatch,
        batchers={
            "default": {
                "batch_size": 10,
                "batch_timeout": 20,
                "concurrency": 2,
                "partition_by": partition_by_fails_on_boom,
            },
        },
    )
    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, DATA))

    assert [m.data for m in failed] == [BOOM] and isinstance(failed[0].failure_reason, Boom)
    assert sorted(m.data for m in successful) == sorted(set(DATA) - {BOOM})
    assert [call.data for call in pipeline.batches if BOOM in call.data] == []
    assert pipeline.failed_counts == {BOOM: 1}
