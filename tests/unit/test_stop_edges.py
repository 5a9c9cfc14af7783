"""Stopping from inside: a handler that calls stop() or join() begins the stop and returns, and the
stop completes; a second signal aborts the drain but still stops the services."""

import os
import signal

import gevent
import pytest
from gevent.event import Event

from tests.helpers.engine_support import RecordingPipeline, ServiceProducer, Source, SourceProducer
from tests.helpers.support import wait_until

STOP_AFTER = 25


class StopsItself(RecordingPipeline):
    """Calls self.<how>() from handle_message once it has seen STOP_AFTER messages."""

    how = "stop"

    def __init__(self, **options):
        self.returned = []
        super().__init__(**options)

    def on_message(self, message):
        if len(self.handled) == STOP_AFTER:
            self.returned.append(getattr(self, self.how)())
        return message


@pytest.mark.parametrize("how", ["stop", "join"])
@pytest.mark.parametrize(
    "batchers", [{}, {"default": {"batch_size": 4, "batch_timeout": 50}}], ids=["plain", "batched"]
)
def test_a_handler_that_stops_the_pipeline_ends_run(how, batchers):
    source = Source(range(100_000))
    pipeline = type("Stops", (StopsItself,), {"how": how})(
        name="self-stop",
        producer={"module": (SourceProducer, {"source": source})},
        processors={"default": {"concurrency": 3, "max_demand": 5}},
        batchers=batchers,
        shutdown_timeout=20_000,
    )

    runner = gevent.spawn(pipeline.run)

    assert runner.get(timeout=15) is True, "run() did not return cleanly after a handler stopped the pipeline"
    assert pipeline.returned == [False], f"{how}() from a handler must return False at once"
    assert not pipeline.running and pipeline.failure is None
    source.assert_each_produced_message_acked_once()
    assert source.acknowledger.failed == []


def test_stop_from_a_handler_returns_before_the_stop_is_done_and_a_later_stop_gets_its_result():
    source = Source(range(100_000))
    pipeline = StopsItself(
        name="self-stop",
        producer={"module": (SourceProducer, {"source": source})},
        processors={"default": {"concurrency": 1}},
    ).start()
    wait_until(lambda: pipeline.returned, what="the handler to call stop()")
    # the handler went on: its message was acknowledged even though the stop waits for it
    assert pipeline.stop() is True
    assert pipeline.join(timeout=0) is True
    source.assert_each_produced_message_acked_once()


class Service:
    def __init__(self):
        self.stops = []

    def start(self):
        pass

    def stop(self, timeout):
        self.stops.append(timeout)
        return True


class StuckOnSeven(RecordingPipeline):
    def on_message(self, message):
        if message.data == 7:
            Event().wait()
        return message


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_aborts_the_drain_but_still_stops_the_services(sig):
    source, service = Source(range(100)), Service()
    pipeline = StuckOnSeven(
        name="abort",
        producer={"module": (ServiceProducer, {"source": source, "service": service})},
        processors={"default": {"concurrency": 2, "max_demand": 2}},
        shutdown_timeout=120_000,  # the drain would wait this long for the stuck handler
    )
    runner = gevent.spawn(pipeline.run)
    wait_until(lambda: 7 in [data for _, data in pipeline.handled], what="the handler to get stuck")
    wait_until(lambda: source.acknowledger.acked >= 50, what="the other messages to be acknowledged")

    os.kill(os.getpid(), sig)
    gevent.sleep(0.2)
    assert runner.ready() is False, "the first signal should drain, waiting for the stuck handler"
    os.kill(os.getpid(), sig)

    assert runner.get(timeout=10) is False
    assert len(service.stops) == 1 and service.stops[0] > 0
    seven = next(m for m in source.produced if m.data == 7)
    assert source.acknowledger.acks[id(seven)] == 0
    assert all(source.acknowledger.acks[id(m)] <= 1 for m in source.produced)


def test_a_stuck_handler_leaves_the_services_their_share_of_the_stop_budget():
    source, service = Source(range(100)), Service()
    pipeline = StuckOnSeven(
        name="budget",
        producer={"module": (ServiceProducer, {"source": source, "service": service})},
        processors={"default": {"concurrency": 2, "max_demand": 2}},
        shutdown_timeout=2000,
    ).start()
    wait_until(lambda: 7 in [data for _, data in pipeline.handled], what="the handler to get stuck")

    with gevent.Timeout(2.0 + 5.0, AssertionError("the stop overran its budget by far")):
        assert pipeline.stop() is False
    (given,) = service.stops
    assert 0.25 <= given <= 1.0, f"the service was given {given:.2f}s of a 2s budget"
