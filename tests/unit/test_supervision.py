"""Nothing dies silently: a stage greenlet that dies, or a service that reports it cannot work,
marks the pipeline failed and stops it gracefully within its shutdown timeout; run() returns
False; the messages the dead greenlet held are never acknowledged."""

import time

import gevent
import pytest
from gevent.event import Event

from tests.helpers.engine_support import RecordingPipeline, ServiceProducer, Source, SourceProducer, stage_greenlet
from tests.helpers.support import wait_until

SHUTDOWN_MS = 2000
STOP_LIMIT = SHUTDOWN_MS / 1000 + 5.0  # generous: the assertion is "bounded", not "fast"
NEVER = 60_000


class HoldsOne(RecordingPipeline):
    """Blocks in handle_message (or handle_batch) on the message "held" until `release` is set."""

    def __init__(self, **options):
        self.release = Event()
        self.holding = Event()
        super().__init__(**options)

    def _hold(self, messages):
        if any(m.data == "held" for m in messages):
            self.holding.set()
            self.release.wait()

    def on_message(self, message):
        if not self.options["batchers"]:
            self._hold([message])
        return message

    def on_batch(self, messages, info):
        self._hold(messages)
        return messages


def run_in_background(pipeline):
    runner = gevent.spawn(pipeline.run)
    wait_until(lambda: pipeline.running or pipeline.failure, what="run() to start the pipeline")
    return runner


def assert_failed_and_stopped(pipeline, runner, stage_name):
    began = time.monotonic()
    wait_until(lambda: pipeline.failure is not None, what="the pipeline to notice")
    assert stage_name in pipeline.failure
    assert runner.get(timeout=STOP_LIMIT) is False
    assert time.monotonic() - began < STOP_LIMIT
    assert not pipeline.running
    assert pipeline.stop() is False  # the stop already happened; a later call returns its result


def new_pipeline(cls, source, **options):
    options.setdefault("processors", {"default": {"concurrency": 2, "max_demand": 3}})
    return cls(
        name="sup", producer={"module": (SourceProducer, {"source": source})}, shutdown_timeout=SHUTDOWN_MS, **options
    )


def test_a_dead_processor_fails_the_pipeline_and_what_it_held_is_not_acknowledged(caplog):
    source = Source(["held", *range(200)])
    pipeline = new_pipeline(HoldsOne, source)
    runner = run_in_background(pipeline)
    pipeline.holding.wait(5)
    greenlet = next(g for g, data in pipeline.handled if data == "held")

    greenlet.kill(block=False)  # a GreenletExit the pipeline did not send

    assert_failed_and_stopped(pipeline, runner, "sup.processor.")
    acks = source.acknowledger.acks
    assert acks[id(source.produced[0])] == 0, "the message the dead processor held was acknowledged"
    assert all(acks[id(m)] <= 1 for m in source.produced)
    assert any("died" in r.getMessage() or "killed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
def test_a_handler_raising_a_stop_the_process_exception_fails_the_pipeline(exception):
    class Exits(RecordingPipeline):
        def on_message(self, message):
            if message.data == 5:
                raise exception
            return message

    source = Source(range(100))
    pipeline = new_pipeline(Exits, source, processors={"default": {"concurrency": 1, "max_demand": 1}})
    runner = run_in_background(pipeline)

    assert_failed_and_stopped(pipeline, runner, type(exception).__name__)
    five = next(m for m in source.produced if m.data == 5)
    assert source.acknowledger.acks[id(five)] == 0
    assert {m.data for m in source.acknowledger.successful} == set(range(5)), "acked past the unfinished message"


def test_a_dead_batch_processor_fails_the_pipeline_and_its_batch_is_not_acknowledged():
    source = Source(["held", *range(50)])
    pipeline = new_pipeline(HoldsOne, source, batchers={"default": {"batch_size": 4, "batch_timeout": 10}})
    runner = run_in_background(pipeline)
    pipeline.holding.wait(5)
    held_batch = next(call for call in pipeline.batches if "held" in call.data)

    held_batch.greenlet.kill(block=False)

    assert_failed_and_stopped(pipeline, runner, "sup.batch_processor.default.0")
    acked = {m.data for m in (*source.acknowledger.successful, *source.acknowledger.failed)}
    assert not acked & set(held_batch.data), "a message of the dead batch processor's batch was acknowledged"


def test_a_dead_batcher_fails_the_pipeline_and_its_partial_batch_is_not_acknowledged():
    source = Source(range(5))
    pipeline = new_pipeline(
        RecordingPipeline, source, batchers={"default": {"batch_size": 100, "batch_timeout": NEVER}}
    )
    runner = run_in_background(pipeline)
    wait_until(lambda: len(pipeline.handled) == 5, what="all messages handled and waiting in the batcher")

    stage_greenlet(pipeline, "batcher.default").kill(RuntimeError("a bug in gkbroad"), block=False)

    assert_failed_and_stopped(pipeline, runner, "sup.batcher.default")
    assert "RuntimeError: a bug in gkbroad" in pipeline.failure
    assert source.acknowledger.acked == 0
    assert pipeline.batches == []


def test_a_dead_producer_fails_the_pipeline_and_what_it_handed_over_is_still_drained():
    source = Source(range(100_000))
    pipeline = new_pipeline(RecordingPipeline, source)
    runner = run_in_background(pipeline)
    wait_until(lambda: source.acknowledger.acked > 20, what="some acks")

    stage_greenlet(pipeline, "producer.0").kill(block=False)

    assert_failed_and_stopped(pipeline, runner, "sup.producer.0")
    source.assert_each_produced_message_acked_once()


class ReportingService:
    def __init__(self):
        self.report = None
        self.calls = []

    def supervise(self, report):
        self.calls.append("supervise")
        self.report = report

    def start(self):
        self.calls.append("start")

    def stop(self, timeout):
        self.calls.append(("stop", timeout))
        return True


def test_a_service_that_reports_fails_the_pipeline_which_stops_it_once():
    service = ReportingService()
    source = Source(range(100_000))
    pipeline = RecordingPipeline(
        name="sup",
        producer={"module": (ServiceProducer, {"source": source, "service": service})},
        processors={"default": {}},
        shutdown_timeout=SHUTDOWN_MS,
    )
    runner = run_in_background(pipeline)
    assert service.calls == ["supervise", "start"]
    wait_until(lambda: source.acknowledger.acked > 20, what="some acks")

    service.report("its poll loop died")

    assert_failed_and_stopped(pipeline, runner, "ReportingService failed: its poll loop died")
    (stop,) = [call for call in service.calls if call[0] == "stop"]
    assert 0 < stop[1] <= SHUTDOWN_MS / 1000
    source.assert_each_produced_message_acked_once()


class UncleanService(ReportingService):
    def stop(self, timeout):
        super().stop(timeout)
        return False  # e.g. the final commit did not get through


def test_a_service_that_did_not_stop_cleanly_makes_stop_return_false():
    service = UncleanService()
    pipeline = RecordingPipeline(
        name="sup",
        producer={"module": (ServiceProducer, {"source": Source(range(10)), "service": service})},
        processors={"default": {}},
    ).start()

    assert pipeline.stop() is False
    assert pipeline.failure is None


def test_a_gevent_timeout_in_a_handler_fails_only_that_message(run_source):
    class TimesOut(RecordingPipeline):
        def on_message(self, message):
            if message.data == 3:
                with gevent.Timeout(0.01):
                    Event().wait()
            return message

    source = Source(range(10))
    pipeline = run_source(TimesOut, source)
    wait_until(lambda: source.acknowledger.acked == 10, what="every message acknowledged")

    (failed,) = source.acknowledger.failed
    assert failed.data == 3 and isinstance(failed.failure_reason, gevent.Timeout)
    assert pipeline.running and pipeline.failure is None


class BrokenAtStart(ReportingService):
    def supervise(self, report):
        super().supervise(report)
        report("kafka-python refused the settings")  # a failure known before start()


def test_a_service_that_reports_before_it_starts_makes_run_return_false():
    service = BrokenAtStart()
    source = Source(range(10))
    pipeline = RecordingPipeline(
        name="sup",
        producer={"module": (ServiceProducer, {"source": source, "service": service})},
        processors={"default": {}},
        shutdown_timeout=SHUTDOWN_MS,
    )

    assert gevent.spawn(pipeline.run).get(timeout=STOP_LIMIT) is False
    assert pipeline.failure == "service BrokenAtStart failed: kafka-python refused the settings"
    assert [c if isinstance(c, str) else c[0] for c in service.calls] == ["supervise", "start", "stop"]
