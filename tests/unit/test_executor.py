"""Executors: a thread executor keeps the hub free while user code blocks in C."""

import time

import gevent
import pytest
from gevent import monkey

from gkbroad.engine.executor import GreenletExecutor, ThreadExecutor, build_executor
from tests.helpers.hub_gaps import hub_gaps

blocking_sleep = monkey.get_original("time", "sleep")


def _longest_gap_while(run):
    """The longest pause between 20 ms ticks of another greenlet while `run()` runs."""
    with hub_gaps(0.02) as gaps:
        run()
    return gaps.longest


def test_thread_executor_runs_blocking_calls_side_by_side_without_blocking_the_hub():
    executor = ThreadExecutor(4)
    try:
        started = time.monotonic()
        gap = _longest_gap_while(
            lambda: gevent.joinall([gevent.spawn(executor.call, blocking_sleep, 0.3) for _ in range(4)])
        )
        elapsed = time.monotonic() - started
    finally:
        executor.close()
    assert elapsed < 1.0  # four 0.3 s calls overlapped instead of taking 1.2 s in a row
    assert gap < 0.25  # the ticker kept running


def test_greenlet_executor_blocks_the_hub_for_the_whole_call():
    gap = _longest_gap_while(lambda: GreenletExecutor().call(blocking_sleep, 0.3))
    assert gap >= 0.25


def test_results_and_exceptions_come_back_to_the_calling_greenlet():
    executor = build_executor("thread", 2)
    try:
        assert executor.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            executor.call(lambda: 1 / 0)
    finally:
        executor.close()
    assert isinstance(build_executor("greenlet", 8), GreenletExecutor)
