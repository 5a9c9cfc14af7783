"""The hub-blocking watchdog names the stage and the user callback that blocked."""

import logging

import gevent
from gevent import monkey
from support import wait_until

from gkbroad.watchdog import BlockingWatchdog

# The unpatched sleep stands in for a C driver that blocks the whole process.
blocking_sleep = monkey.get_original("time", "sleep")


class Orders:
    def handle_message(self, seconds):
        blocking_sleep(seconds)


def _run_named(name, fn, *args):
    greenlet = gevent.Greenlet(fn, *args)
    greenlet.name = name
    greenlet.start()
    greenlet.join()


def test_a_blocking_handler_is_named_once_per_minute(caplog):
    seen = []
    watchdog = BlockingWatchdog("orders", 100, on_blocked=lambda stage, handler: seen.append((stage, handler)))
    watchdog.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gkbroad.watchdog"):
            for count in (1, 2):
                gevent.sleep(0.1)  # the event loop turns between the two blocks
                _run_named("orders.processor.3", Orders().handle_message, 0.6)
                wait_until(lambda count=count: len(seen) >= count, what=f"block {count} to be reported")
    finally:
        watchdog.stop()
    assert seen, "the monitor thread reported no block"
    stage, handler = seen[0]
    assert stage == "orders.processor.3"
    assert handler.startswith("Orders.handle_message (")
    assert "test_watchdog.py" in handler
    warnings = [r for r in caplog.records if r.name == "gkbroad.watchdog"]
    assert len(warnings) == 1  # the second block of the same handler within a minute is only counted
    assert "orders.processor.3" in warnings[0].getMessage()
    assert "blocking_sleep(seconds)" in warnings[0].getMessage()  # the stack shows the blocking line
    assert watchdog.blocked == len(seen) == 2  # one 0.6 s block is counted once


def test_other_pipelines_and_short_pauses_are_not_reported():
    seen = []
    watchdog = BlockingWatchdog("shipping", 300, on_blocked=lambda stage, handler: seen.append(stage))
    watchdog.start()
    try:
        _run_named("billing.processor.0", Orders().handle_message, 0.8)  # another pipeline's stage
        _run_named("shipping.processor.0", Orders().handle_message, 0.05)  # under the threshold
        gevent.sleep(0.8)
    finally:
        watchdog.stop()
    assert seen == []
