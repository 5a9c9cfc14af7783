"""Pipeline lifecycle: start/stop/join states, and what every callback is given."""

import pytest

import gkbroad
from gkbroad import PipelineStateError, testing
from tests.helpers.engine_support import RecordingPipeline, SourceProducer


def new_pipeline(cls=RecordingPipeline, **options):
    return cls(name="life", producer={"module": testing.DummyProducer}, processors={"default": {}}, **options)


def test_start_twice_is_refused(run_testing):
    pipeline = run_testing(RecordingPipeline)

    with pytest.raises(PipelineStateError, match="already started"):
        pipeline.start()


@pytest.mark.parametrize("call", ["stop", "join"])
def test_stop_or_join_before_start_is_refused(call):
    pipeline = new_pipeline()

    with pytest.raises(PipelineStateError, match="was not started"):
        getattr(pipeline, call)()
    assert not pipeline.running and pipeline.in_flight == 0


def test_running_and_join_follow_the_pipeline_state():
    pipeline = new_pipeline()
    assert pipeline.start() is pipeline
    assert pipeline.running and pipeline.join(timeout=0.05) is False

    assert pipeline.stop() is True

    assert not pipeline.running and pipeline.join(timeout=0) is True
    with pytest.raises(PipelineStateError):
        pipeline.start()


class SeesContext(gkbroad.Pipeline):
    def __init__(self, **options):
        self.contexts = {}
        super().__init__(**options)

    def prepare_messages(self, messages, context):
        self.contexts["prepare_messages"] = context
        return messages

    def handle_message(self, processor, message, context):
        self.contexts["handle_message"] = context
        return message.failed("to reach handle_failed") if message.data == "fail" else message

    def handle_batch(self, batcher, messages, batch_info, context):
        self.contexts["handle_batch"] = context
        return messages

    def handle_failed(self, messages, context):
        self.contexts["handle_failed"] = context
        return messages


def test_every_callback_is_given_the_context(run_testing):
    context = {"db": object()}
    pipeline = run_testing(SeesContext, context=context, batchers={"default": {"batch_size": 1}})

    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["ok", "fail"]))

    assert pipeline.contexts == dict.fromkeys(
        ["prepare_messages", "handle_message", "handle_batch", "handle_failed"], context
    )
    assert all(seen is context for seen in pipeline.contexts.values())


class Service:
    def __init__(self, events, name, fails=False):
        self.events, self.name, self.fails = events, name, fails

    def start(self):
        self.events.append(f"start {self.name}")
        if self.fails:
            raise OSError(f"{self.name} cannot start")

    def stop(self, timeout):
        self.events.append(f"stop {self.name}")


class TwoServices(SourceProducer):
    @classmethod
    def prepare_for_start(cls, options, pipeline_options):
        events = options["events"]
        return [Service(events, "first"), Service(events, "second", fails=True)], pipeline_options


def test_a_service_failing_to_start_fails_start_and_stops_the_ones_started():
    events = []
    pipeline = RecordingPipeline(
        name="life", producer={"module": (TwoServices, {"events": events, "source": None})}, processors={"default": {}}
    )

    with pytest.raises(OSError, match="second cannot start"):
        pipeline.start()
    assert events == ["start first", "start second", "stop first"]

    assert not pipeline.running
    assert pipeline.stop() is False  # it never ran cleanly; and nothing is stopped twice
    assert events == ["start first", "start second", "stop first"]
