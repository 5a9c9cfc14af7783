"""Flow control: demand bounds what is in flight, producers share it fairly, rate limiting caps throughput."""

import itertools
import time

import gevent
from gevent.event import Event

from gkbroad.engine.flow import Credits, RateLimiter
from tests.helpers.engine_support import RecordingPipeline, Source
from tests.helpers.support import wait_until


class Slow(RecordingPipeline):
    def on_message(self, message):
        gevent.sleep(0.001)
        return message


def test_a_slow_handler_never_has_more_than_concurrency_times_max_demand_in_flight(run_source):
    concurrency, max_demand = 4, 5
    bound = concurrency * max_demand
    source = Source(range(1_000_000))  # offered lazily, taken only on demand
    pipeline = run_source(Slow, source, processors={"default": {"concurrency": concurrency, "max_demand": max_demand}})

    peak_in_flight = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        peak_in_flight = max(peak_in_flight, pipeline.in_flight)
        gevent.sleep(0.005)
    assert pipeline.stop() is True

    assert source.max_outstanding <= bound, "more messages delivered-but-not-acked than the demand allows"
    assert max(source.demands) <= bound
    assert peak_in_flight <= bound
    assert bound < len(source.produced) < 1_000_000  # demand was recycled, and the source was read lazily
    source.assert_each_produced_message_acked_once()


def test_an_idle_producer_does_not_starve_a_busy_one(run_source):
    release_idle = Event()
    idle, busy = Source(), Source(range(200))
    idle.idle_wait = release_idle.wait  # blocks in receive() until the test is done
    try:
        run_source(
            RecordingPipeline,
            sources=[idle, busy],
            producer={"concurrency": 2},
            processors={"default": {"concurrency": 2, "max_demand": 5}},
        )

        wait_until(
            lambda: busy.acknowledger.acked == 200,
            timeout=10,
            what="the busy producer's messages while the idle one blocks in receive()",
        )
    finally:
        release_idle.set()
    busy.assert_each_produced_message_acked_once()


def test_rate_limiting_caps_throughput_across_all_producers(run_source):
    allowed, interval_ms = 20, 100
    source = Source(itertools.count())
    began = time.monotonic()
    pipeline = run_source(
        RecordingPipeline,
        source,
        producer={"concurrency": 3, "rate_limiting": {"allowed_messages": allowed, "interval": interval_ms}},
    )
    gevent.sleep(0.5)
    assert pipeline.stop() is True
    elapsed = time.monotonic() - began

    windows = elapsed / (interval_ms / 1000) + 2  # loose: windows begun while it ran, plus slack
    assert 0 < len(source.produced) <= allowed * windows
    source.assert_each_produced_message_acked_once()


def test_credits_are_taken_up_to_what_is_free_and_given_back():
    credits, cancel = Credits(10), Event()
    assert credits.take(4, cancel) == 4
    assert credits.take(100, cancel) == 6
    assert credits.in_use == 10
    credits.give(3)
    assert (credits.available, credits.take(5, cancel)) == (3, 3)


def test_credits_take_waits_for_a_give_and_returns_zero_when_cancelled():
    credits, cancel = Credits(1), Event()
    credits.take(1, cancel)
    waiter = gevent.spawn(credits.take, 1, cancel)
    gevent.sleep(0.01)
    assert not waiter.ready()
    credits.give(1)
    assert waiter.get(timeout=1) == 1

    cancelled = gevent.spawn(credits.take, 1, cancel)
    cancel.set()
    assert cancelled.get(timeout=1) == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rate_limiter_allows_so_many_per_interval():
    clock, cancel = FakeClock(), Event()
    limiter = RateLimiter(5, 1000, clock=clock)
    assert limiter.take(3, cancel) == 3
    assert limiter.take(10, cancel) == 2
    cancel.set()
    assert limiter.take(1, cancel) == 0  # window used up: it would wait, and gives up when cancelled
    clock.now += 1.0
    assert limiter.take(10, cancel) == 5


def test_rate_limiter_takes_back_unused_messages_up_to_the_allowance():
    clock, cancel = FakeClock(), Event()
    limiter = RateLimiter(5, 1000, clock=clock)
    limiter.take(5, cancel)
    limiter.give_back(2)
    assert limiter.take(10, cancel) == 2
    limiter.give_back(50)
    assert limiter.take(10, cancel) == 5


def test_rate_limiter_waits_for_the_next_window():
    limiter = RateLimiter(1, 50)
    cancel = Event()
    assert limiter.take(1, cancel) == 1
    began = time.monotonic()
    assert limiter.take(1, cancel) == 1
    assert time.monotonic() - began >= 0.04
