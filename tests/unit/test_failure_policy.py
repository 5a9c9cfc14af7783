"""on_failure: "ack" acknowledges failures; a circuit breaker holds them back while they could
still trip it, and when it trips the pipeline stops as failed without acknowledging them or
anything after them. Repeated identical failures are logged once, then counted."""

import logging

import gevent
import pytest

from gkbroad.engine.failure_policy import FailurePolicy
from tests.helpers.engine_support import RecordingPipeline, Source, SourceProducer
from tests.helpers.support import wait_until


def msgs(*names):
    return list(names)


# -- the breaker by value ------------------------------------------------------


def test_consecutive_holds_failures_until_a_success_releases_them():
    policy = FailurePolicy(max_consecutive=3)
    assert policy.admit(0, msgs("f1")) == []
    assert policy.admit(0, msgs("f2")) == []
    assert policy.held == 2
    assert policy.admit(1, []) == ["f1", "f2"]
    assert policy.admit(0, msgs("f3", "f4")) == []
    assert not policy.tripped
    assert policy.release_all() == ["f3", "f4"]


def test_consecutive_trips_on_the_nth_failure_in_a_row_and_then_releases_nothing():
    policy = FailurePolicy(max_consecutive=3)
    policy.admit(0, msgs("f1", "f2"))
    assert policy.admit(0, msgs("f3", "f4")) == []
    assert policy.tripped
    assert policy.admit(5, msgs("f5")) == []
    assert policy.release_all() == []


def test_rate_releases_a_failure_once_the_window_has_moved_past_it():
    policy = FailurePolicy(max_rate=0.5, window=4)  # trips at 2 failures among the last 4
    assert policy.admit(1, msgs("f1")) == []  # window: ok f1
    assert policy.admit(3, []) == []  # window: f1 ok ok ok
    assert policy.admit(1, []) == ["f1"]  # window: ok ok ok ok
    assert not policy.tripped


def test_rate_trips_when_the_window_holds_enough_failures():
    policy = FailurePolicy(max_rate=0.5, window=4)
    assert policy.admit(1, msgs("f1")) == []
    assert policy.admit(1, msgs("f2")) == []
    assert policy.tripped
    assert policy.description == "2 failures in the last 4 messages"


def test_rate_one_needs_a_whole_window_of_failures():
    policy = FailurePolicy(max_rate=1.0, window=3)
    policy.admit(0, msgs("f1", "f2"))
    assert policy.admit(1, []) == []  # window f1 f2 ok: nothing left it yet
    assert policy.admit(0, msgs("f3", "f4")) == ["f1", "f2"]
    assert not policy.tripped
    policy.admit(0, msgs("f5"))
    assert policy.tripped


# -- in a pipeline ----------------------------------------------------------------


class FailsFrom(RecordingPipeline):
    """Fails every message whose data is >= `first_bad` (a handler broken by a deploy), or, with
    `every`, every `every`-th message."""

    first_bad = None
    every = None

    def on_message(self, message):
        data = message.data
        if (self.first_bad is not None and data >= self.first_bad) or (self.every and data % self.every == 0):
            raise ValueError("cannot parse the record")
        return message


def run(cls, source, on_failure, **attrs):
    cls = type("Handler", (cls,), attrs)
    pipeline = cls(
        name="policy",
        producer={"module": (SourceProducer, {"source": source})},
        processors={"default": {"concurrency": 1, "max_demand": 1}},
        on_failure=on_failure,
        shutdown_timeout=5000,
    )
    return pipeline, gevent.spawn(pipeline.run)


@pytest.mark.parametrize(
    "on_failure", [{"max_consecutive": 5}, {"max_rate": 0.5, "window": 10}], ids=["consecutive", "rate"]
)
def test_a_broken_handler_trips_the_breaker_and_nothing_from_the_first_failure_on_is_acknowledged(on_failure):
    source = Source(range(100_000))
    pipeline, runner = run(FailsFrom, source, on_failure, first_bad=20)

    assert runner.get(timeout=15) is False
    assert pipeline.failure.startswith("on_failure: ")
    ack = source.acknowledger
    assert ack.failed == [], "a failure was acknowledged"
    assert sorted(m.data for m in ack.successful) == list(range(20)), "acknowledged past the first failure"
    assert pipeline.failed_calls == [], "held failures went to handle_failed (a dead-letter write) before the trip"


@pytest.mark.parametrize(
    "on_failure", [{"max_consecutive": 2}, {"max_rate": 0.5, "window": 10}], ids=["consecutive", "rate"]
)
def test_scattered_failures_do_not_trip_it_and_are_all_acknowledged_by_the_stop(on_failure):
    source = Source(range(300))
    pipeline, runner = run(FailsFrom, source, on_failure, every=3)  # 1 in 3 fails, never two in a row
    wait_until(lambda: len(pipeline.handled) == 300, what="every message handled")
    gevent.sleep(0.05)

    assert pipeline.stop() is True
    assert runner.get(timeout=5) is True
    assert pipeline.failure is None
    source.assert_each_produced_message_acked_once()
    assert sorted(m.data for m in source.acknowledger.failed) == list(range(0, 300, 3))
    assert sorted(pipeline.failed_counts) == list(range(0, 300, 3))


def test_ack_is_the_default_and_acknowledges_every_failure():
    source = Source(range(50))
    pipeline, runner = run(FailsFrom, source, "ack", first_bad=0)
    wait_until(lambda: source.acknowledger.acked == 50, what="every message acknowledged")
    assert pipeline.stop() is True and runner.get(timeout=5) is True
    assert len(source.acknowledger.failed) == 50


def test_identical_failures_are_logged_once_with_their_traceback_then_counted(caplog):
    caplog.set_level(logging.ERROR)
    source = Source(range(200))
    pipeline, runner = run(FailsFrom, source, "ack", first_bad=0)
    wait_until(lambda: source.acknowledger.acked == 200, what="every message acknowledged")
    assert pipeline.stop() is True and runner.get(timeout=5) is True

    raised = [r for r in caplog.records if r.getMessage().startswith("[policy] handle_message raised ValueError")]
    assert len(raised) == 1 and raised[0].exc_info
    counts = [r for r in caplog.records if "the same failure again 199 times" in r.getMessage()]
    assert len(counts) == 1 and not counts[0].exc_info


def test_a_repeated_failure_is_counted_and_the_count_logged_once_per_interval(caplog):
    from gkbroad.engine.repeated_log import RepeatedLog

    now = [0.0]
    log = RepeatedLog("p", logging.getLogger("test.repeated"), interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="test.repeated"):
        for second in range(0, 61):
            now[0] = float(second)
            log.error("key", "same thing")
        log.error("other", "another thing")
        log.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "[p] same thing",
        "[p] the same failure again 30 times in the last 30s: same thing",
        "[p] the same failure again 30 times in the last 30s: same thing",
        "[p] another thing",
    ]
    now[0] = 70.0
    log.error("key", "same thing")
    with caplog.at_level(logging.ERROR, logger="test.repeated"):
        log.flush()
    assert caplog.records[-1].getMessage() == "[p] the same failure again 1 times in the last 10s: same thing"


def test_failures_of_one_type_in_one_place_count_as_one_kind_whatever_their_messages(caplog):
    from gkbroad.engine.repeated_log import RepeatedLog

    now = [0.0]
    log = RepeatedLog("p", logging.getLogger("test.repeated"), interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="test.repeated"):
        for order in range(5):
            now[0] = float(order)
            error = KeyError(f"order {order}")
            log.exception("handle_message", error, f"handle_message raised {error!r}")
        log.exception("handle_batch", KeyError("order 9"), "handle_batch raised KeyError('order 9')")
        log.exception("handle_message", ValueError("order 7"), "handle_message raised ValueError('order 7')")
        log.flush()
    messages = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert messages == [
        ("[p] handle_message raised KeyError('order 0')", True),
        ("[p] handle_batch raised KeyError('order 9')", True),
        ("[p] handle_message raised ValueError('order 7')", True),
        (
            "[p] 4 more failures of the same kind (same place, same exception type) in the last 4s; "
            "the latest: handle_message raised KeyError('order 4')",
            False,
        ),
    ]
