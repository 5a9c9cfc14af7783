"""The producer protocol (gkbroad/producer.py) as the pipeline drives it."""

import logging

from gkbroad.engine.stages import producer_stage
from tests.helpers.engine_support import RecordingPipeline, Source, SourceProducer
from tests.helpers.support import wait_until


class Service:
    def __init__(self, events, source):
        self.events, self.source = events, source

    def start(self):
        self.events.append("service.start")

    def stop(self, timeout):
        self.events.append(("service.stop", self.source.acknowledger.acked, len(self.source.produced)))


class ScriptedProducer(SourceProducer):
    """A SourceProducer with a service, that logs each protocol call into options["events"]."""

    @classmethod
    def prepare_for_start(cls, options, pipeline_options):
        return [Service(options["events"], options["source"])], pipeline_options

    def __init__(self, options, *, index, count):
        super().__init__(options, index=index, count=count)
        self.events = options["events"]
        self.events.append(("init", index, count))

    def receive(self, demand):
        self.events.append(("receive", self.index))
        return super().receive(demand)

    def prepare_for_draining(self):
        self.events.append(("prepare_for_draining", self.index))


def start_scripted(run_source, source, **options):
    events = []
    pipeline = run_source(
        RecordingPipeline,
        producer={"module": (ScriptedProducer, {"source": source, "events": events}), "concurrency": 2},
        **options,
    )
    return pipeline, events


def test_protocol_calls_come_in_order_and_services_stop_after_every_ack(run_source):
    source = Source(range(300))
    pipeline, events = start_scripted(run_source, source, processors={"default": {"concurrency": 3, "max_demand": 4}})
    wait_until(lambda: source.acknowledger.acked > 20, what="some messages acknowledged")

    assert pipeline.stop() is True

    assert [e for e in events if e[0] == "init"] == [("init", 0, 2), ("init", 1, 2)]
    assert events.index("service.start") < events.index(("receive", 0))
    for index in (0, 1):
        draining = events.index(("prepare_for_draining", index))
        assert ("receive", index) not in events[draining:], "receive() was called after prepare_for_draining()"
    produced = len(source.produced)
    assert events[-1] == ("service.stop", produced, produced), "a service stopped before every message was acked"
    assert events.count("service.start") == 1
    assert sum(isinstance(e, tuple) and e[0] == "service.stop" for e in events) == 1


class FlakySource(Source):
    def __init__(self, data, failures):
        super().__init__(data)
        self.failures = failures

    def take(self, demand):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        return super().take(demand)


def test_a_receive_that_raises_is_logged_and_retried(run_source, monkeypatch, caplog):
    monkeypatch.setattr(producer_stage, "RECEIVE_ERROR_BACKOFF", 0.01)
    source = FlakySource(range(20), failures=3)
    run_source(RecordingPipeline, source)

    wait_until(lambda: source.acknowledger.acked == 20, what="every message acknowledged after the failures")

    source.assert_each_produced_message_acked_once()
    raised = [r for r in caplog.records if "raised; retrying" in r.getMessage()]
    assert len(raised) == 3 and all(r.exc_info for r in raised)


class GenerousSource(Source):
    def take(self, demand):
        return super().take(demand + 5)


def test_messages_beyond_the_demand_are_processed_anyway(run_source, caplog):
    source = GenerousSource(range(30))
    run_source(RecordingPipeline, source, processors={"default": {"concurrency": 1, "max_demand": 2}})

    wait_until(lambda: source.acknowledger.acked == 30, what="every message acknowledged")

    source.assert_each_produced_message_acked_once()
    assert any(r.levelno == logging.WARNING and "extra ones" in r.getMessage() for r in caplog.records)


class DrainingFails(SourceProducer):
    def prepare_for_draining(self):
        raise RuntimeError("cannot pause")


def test_prepare_for_draining_raising_is_logged_and_the_stop_goes_on(run_source, caplog):
    source = Source(range(100))
    pipeline = run_source(RecordingPipeline, producer={"module": (DrainingFails, {"source": source})})
    wait_until(lambda: source.acknowledger.acked > 0, what="a first ack")

    assert pipeline.stop() is True

    source.assert_each_produced_message_acked_once()
    assert any("prepare_for_draining raised" in r.getMessage() and r.exc_info for r in caplog.records)
