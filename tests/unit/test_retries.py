"""Processor retries: attempts, backoff, order per lane, and a stop during a backoff."""

from __future__ import annotations

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gkbroad import ConfigError, testing
from gkbroad.engine.backoff import backoff_delay
from gkbroad.engine.retry import RetryPolicy
from gkbroad.observability.prometheus import exposition
from tests.helpers.engine_support import CountingAcknowledger, RecordingPipeline, Source
from tests.helpers.support import wait_until

FAST = {"max_attempts": 3, "backoff": 1, "max_backoff": 5}


class Flaky(RecordingPipeline):
    """Raises ConnectionError for the first `failures[data]` attempts of a message."""

    failures: dict = {}

    def on_message(self, message):
        if message.metadata["attempt"] <= self.failures.get(message.data, 0):
            raise ConnectionError(f"{message.data} attempt {message.metadata['attempt']}")
        return message


def processors(retry: dict, **more) -> dict:
    return {"default": {"retry": retry, **more}}


def test_a_handler_failing_twice_then_succeeding_is_acknowledged_as_successful(run_testing):
    Flaky.failures = {"a": 2}
    pipeline = run_testing(Flaky, processors=processors(FAST))

    successful, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "a"))

    assert [m.data for m in successful] == ["a"] and failed == []
    assert [data for _, data in pipeline.handled] == ["a", "a", "a"]
    assert successful[0].metadata["attempt"] == 3
    assert pipeline.failed_calls == []


def test_a_handler_that_always_fails_fails_after_the_last_attempt(run_testing):
    Flaky.failures = {"a": 99}
    pipeline = run_testing(Flaky, processors=processors(FAST))

    successful, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "a"))

    assert successful == [] and [m.data for m in failed] == ["a"]
    assert len(pipeline.handled) == 3
    assert isinstance(failed[0].failure_reason, ConnectionError)
    assert str(failed[0].failure_reason) == "a attempt 3"
    assert pipeline.failed_counts == {"a": 1}


def test_only_the_listed_exceptions_are_retried(run_testing):
    class WrongType(RecordingPipeline):
        def on_message(self, message):
            raise ValueError("not transient")

    pipeline = run_testing(WrongType, processors=processors({**FAST, "retry_on": ["builtins.ConnectionError"]}))

    _, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "a"))

    assert [m.data for m in failed] == ["a"] and len(pipeline.handled) == 1


@pytest.mark.parametrize("reason", ["bad data", ConnectionError("even with an exception as its reason")])
def test_a_message_the_handler_marks_failed_is_not_retried(run_testing, reason):
    class Refuses(RecordingPipeline):
        def on_message(self, message):
            return message.failed(reason)

    pipeline = run_testing(Refuses, processors=processors(FAST))

    _, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "a"))

    assert failed[0].failure_reason is reason and len(pipeline.handled) == 1


def test_without_retry_there_is_one_attempt_and_no_attempt_metadata(run_testing):
    pipeline = run_testing(RecordingPipeline)

    successful, _ = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "a"))

    assert successful[0].metadata == {}


def test_a_retried_message_holds_its_lane_and_other_lanes_keep_flowing(run_testing):
    """Lane 0 holds "a0" (retried) ahead of "b0"; lane 1's messages pass meanwhile."""
    Flaky.failures = {"a0": 2}
    lane = {"a0": 0, "b0": 0, "a1": 1, "b1": 1}
    pipeline = run_testing(
        Flaky,
        processors=processors(
            {"max_attempts": 3, "backoff": 100, "max_backoff": 100},
            concurrency=2,
            partition_by=lambda m: lane[m.data],
        ),
    )

    ref = testing.test_batch(pipeline, ["a0", "a1", "b0", "b1"])
    successful, failed = testing.wait_for_ack(pipeline, ref)

    assert failed == [] and len(successful) == 4
    calls = [data for _, data in pipeline.handled]
    assert [d for d in calls if d.endswith("0")] == ["a0", "a0", "a0", "b0"]
    second_attempt_of_a0 = [i for i, d in enumerate(calls) if d == "a0"][1]
    assert calls.index("b1") < second_attempt_of_a0  # lane 1 went on while lane 0 waited


def test_a_stop_during_the_backoff_ends_the_wait_and_acknowledges_nothing_behind_it(run_testing):
    Flaky.failures = {"a": 99}
    pipeline = run_testing(
        Flaky, processors=processors({"max_attempts": 5, "backoff": 60_000, "max_backoff": 60_000}, concurrency=1)
    )
    ref = testing.test_batch(pipeline, ["before", "a", "after"])
    wait_until(lambda: [d for _, d in pipeline.handled] == ["before", "a"], what="the first attempt of a")

    with gevent.Timeout(10, AssertionError("the stop waited for the backoff")):
        assert pipeline.stop() is True

    with pytest.raises(TimeoutError, match="1 of 3 messages acknowledged"):
        testing.wait_for_ack(pipeline, ref, timeout=0.1)
    assert [d for _, d in pipeline.handled] == ["before", "a"]  # "after" was never handled
    assert pipeline.failed_calls == []


class WithdrawingAcknowledger(CountingAcknowledger):
    def __init__(self):
        super().__init__()
        self.withdrawn = []

    def withdraw(self, ref, messages):
        self.withdrawn.extend(m.data for m in messages)


def test_messages_given_up_at_stop_are_withdrawn_from_their_acknowledger(run_source):
    Flaky.failures = {"a": 99}
    source = Source(["before", "a", "after", "later"])
    source.acknowledger = WithdrawingAcknowledger()
    pipeline = run_source(
        Flaky,
        source,
        processors=processors({"max_attempts": 5, "backoff": 60_000, "max_backoff": 60_000}, concurrency=1),
    )
    wait_until(lambda: "a" in [d for _, d in pipeline.handled], what="the first attempt of a")

    assert pipeline.stop() is True

    assert [m.data for m in source.acknowledger.successful] == ["before"]
    assert source.acknowledger.failed == []
    assert source.acknowledger.withdrawn == ["a", "after", "later"]


def test_backoff_doubles_up_to_the_limit_with_jitter():
    delays = [backoff_delay(n, 0.1, 1.0) for n in (1, 2, 3, 4, 5, 10)]
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.8 <= delay <= expected * 1.2


def test_the_policy_counts_attempts_and_exception_types():
    policy = RetryPolicy(max_attempts=3, backoff=10, max_backoff=100, retry_on=(OSError,))
    assert policy.retries(ConnectionError(), 1) and policy.retries(OSError(), 2)
    assert not policy.retries(OSError(), 3)
    assert not policy.retries(ValueError(), 1)


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ({"max_attempts": 1}, "processors.default.retry.max_attempts: must be at least 2 (1 means no retry), got 1"),
        ({}, "processors.default.retry.max_attempts: missing required option"),
        (
            {"max_attempts": 2, "retry_on": ["builtins.len"]},
            "processors.default.retry.retry_on: item 0 must be an exception class or a dotted path to one",
        ),
        ({"max_attempts": 2, "retry_on": []}, "processors.default.retry.retry_on: must be a non-empty list"),
        ({"max_attempts": 2, "backoff": -1}, "processors.default.retry.backoff: must be a non-negative integer"),
        ({"max_attempts": 2, "tries": 3}, "processors.default.retry.tries: unknown option"),
    ],
)
def test_bad_retry_options_name_the_option(retry, expected):
    with pytest.raises(ConfigError) as raised:
        RecordingPipeline(name="bad", producer={"module": testing.DummyProducer}, processors=processors(retry))
    assert expected in str(raised.value)


def test_each_attempt_made_again_is_counted_as_retried_in_place(run_testing):
    Flaky.failures = {"a": 2, "b": 0}
    pipeline = run_testing(Flaky, name="retry-metrics", processors=processors(FAST), metrics={"prometheus": {}})

    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["a", "b"]))

    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition().decode())
        for sample in family.samples
    }
    assert found[("gkbroad_messages_retried_total", (("mode", "in_place"), ("pipeline", "retry-metrics")))] == 2
    handled = (("partition", "-"), ("pipeline", "retry-metrics"), ("topic", "-"))
    assert found[("gkbroad_messages_handled_total", handled)] == 2
