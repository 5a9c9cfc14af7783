"""Stopping: in-flight messages are processed and acknowledged exactly once, and
a stuck handler cannot make stop() hang past shutdown_timeout."""

import os
import random
import signal
import time

import gevent
import pytest
from gevent.event import Event

from tests.helpers.engine_support import RecordingPipeline, Source
from tests.helpers.support import wait_until

NEVER = 60_000


class RandomlySlow(RecordingPipeline):
    rng = random.Random(3)

    def on_message(self, message):
        gevent.sleep(self.rng.random() * 0.004)
        return message

    def on_batch(self, messages, info):
        gevent.sleep(self.rng.random() * 0.004)
        return messages


@pytest.mark.parametrize(
    "batchers",
    [{}, {"default": {"batch_size": 7, "batch_timeout": NEVER, "concurrency": 2}}],
    ids=["no-batchers", "batchers"],
)
def test_stop_acknowledges_every_message_in_flight_exactly_once(run_source, batchers):
    source = Source(range(100_000))
    pipeline = run_source(
        RandomlySlow, source, batchers=batchers, processors={"default": {"concurrency": 5, "max_demand": 10}}
    )
    wait_until(lambda: source.acknowledger.acked >= 50, what="some messages acknowledged")
    assert source.outstanding > 0, "nothing was in flight when stop() was called"

    assert pipeline.stop() is True

    assert not pipeline.running
    source.assert_each_produced_message_acked_once()
    if batchers:
        # Whatever was still assembling when stop() came left as a "flush" batch;
        # test_batchers.py checks that a partial batch is flushed at all.
        assert all(
            call.info.trigger == "flush" or (call.info.trigger == "size" and len(call.data) == 7)
            for call in pipeline.batches
        )
        assert sum(len(call.data) for call in pipeline.batches) == source.acknowledger.acked


def wait_forever_on_stuck(messages):
    if any(m.data == "stuck" for m in messages):
        Event().wait()


class StuckInHandleMessage(RecordingPipeline):
    def on_message(self, message):
        wait_forever_on_stuck([message])
        return message


class StuckInHandleBatch(RecordingPipeline):
    def on_batch(self, messages, info):
        wait_forever_on_stuck(messages)
        return messages


@pytest.mark.parametrize(
    "handler, batchers",
    [
        (StuckInHandleMessage, {}),
        (StuckInHandleBatch, {"default": {"batch_size": 2, "batch_timeout": 10}}),
    ],
    ids=["handle_message", "handle_batch"],
)
def test_stop_gives_up_after_shutdown_timeout_when_a_handler_never_returns(run_source, handler, batchers):
    # "stuck" first, then enough messages to fill every queue behind it
    source = Source(["stuck", *range(500)])
    pipeline = run_source(
        handler,
        source,
        batchers=batchers,
        shutdown_timeout=300,
        processors={"default": {"concurrency": 2, "max_demand": 5}},
    )
    wait_until(lambda: source.outstanding > 0 and len(source.produced) > 10, what="messages in flight")
    gevent.sleep(0.1)  # let the queues behind the stuck handler fill up

    began = time.monotonic()
    with gevent.Timeout(10, AssertionError("stop() hung")):
        clean = pipeline.stop()
    took = time.monotonic() - began

    assert clean is False
    assert took < 0.3 + 3.0, f"stop() took {took:.1f}s with a 0.3s shutdown_timeout"
    assert not pipeline.running and pipeline.join(timeout=0)
    acks = source.acknowledger.acks
    assert all(acks[id(m)] <= 1 for m in source.produced), "a message was acknowledged twice"
    assert acks[id(source.produced[0])] == 0, "the stuck message was acknowledged"


def test_stop_with_an_explicit_timeout_overrides_shutdown_timeout(run_source):
    pipeline = run_source(StuckInHandleMessage, Source(["stuck"]), shutdown_timeout=NEVER)
    wait_until(lambda: pipeline.handled, what="the stuck message to be handled")

    with gevent.Timeout(10, AssertionError("stop(timeout=0.2) hung")):
        assert pipeline.stop(timeout=0.2) is False


def test_a_second_stop_waits_for_the_first_and_returns_its_result(run_source):
    source = Source(range(200))
    pipeline = run_source(RandomlySlow, source)
    wait_until(lambda: source.acknowledger.acked > 0, what="a first ack")

    first = gevent.spawn(pipeline.stop)
    gevent.sleep(0)
    assert pipeline.stop() is True
    assert first.get(timeout=5) is True
    source.assert_each_produced_message_acked_once()


@pytest.fixture
def run_in_greenlet():
    """run_in_greenlet(source, **options): a RecordingPipeline pipeline whose run() blocks in a greenlet."""
    started = []

    def start(source, **options):
        pipeline = RecordingPipeline(
            name="unit",
            processors={"default": {"concurrency": 3}},
            producer={"module": ("tests.helpers.engine_support:SourceProducer", {"source": source})},
            **options,
        )
        runner = gevent.spawn(pipeline.run)
        started.append((pipeline, runner))
        wait_until(lambda: pipeline.running, what="run() to start the pipeline")
        return pipeline, runner

    yield start
    for pipeline, runner in started:
        if pipeline.running:
            pipeline.stop(timeout=5)
        runner.kill(timeout=5)


def test_run_returns_once_the_pipeline_is_stopped_from_elsewhere(run_in_greenlet):
    pipeline, runner = run_in_greenlet(Source(range(5)))

    assert pipeline.stop() is True
    assert runner.get(timeout=5) is True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_gracefully_on_a_signal(run_in_greenlet, sig):
    source = Source(range(100_000))
    pipeline, runner = run_in_greenlet(source)
    wait_until(lambda: source.acknowledger.acked > 10, what="messages acknowledged under run()")

    os.kill(os.getpid(), sig)

    assert runner.get(timeout=10) is True
    assert not pipeline.running
    source.assert_each_produced_message_acked_once()
