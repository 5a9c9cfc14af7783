"""The hub-blocking watchdog names the stage and the user callback that blocked."""

import logging
import socket
import subprocess
import sys
import textwrap
import time

import gevent
import pytest
from gevent import events, monkey

import gkbroad
from gkbroad import testing
from gkbroad.observability.watchdog import BlockingWatchdog
from tests.helpers.support import wait_until

# The unpatched sleep stands in for a C driver that blocks the whole process.
blocking_sleep = monkey.get_original("time", "sleep")


class SeenBlock:
    """Tells a blocking handler when gevent's monitor thread has seen its block long enough.

    The watchdog can only report a block that the monitor thread checks while it lasts, at least
    `threshold` after its start; a block of fixed length bets on that thread being scheduled in
    time, which a loaded machine does not promise. A handler given a SeenBlock therefore blocks on
    until the monitor has been seen checking at least `threshold` into the block twice: this
    listener is called after the watchdog's own, so by the second such check the watchdog has
    judged the block at least `threshold` long too, and reported it.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._since = time.monotonic()
        self._checks = 0
        events.subscribers.append(self._on_event)

    def begin(self) -> None:
        """Called by the handler as its block starts (the hub last turned before)."""
        self._since = time.monotonic()
        self._checks = 0

    def seen(self) -> bool:
        return self._checks >= 2

    def close(self) -> None:
        events.subscribers.remove(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, events.EventLoopBlocked) and time.monotonic() - self._since >= self.threshold:
            self._checks += 1


def block(seconds, seen_block=None):
    """Blocks the hub for `seconds`, and on until `seen_block` says the monitor saw it (10 s at most)."""
    if seen_block is not None:
        seen_block.begin()
    blocking_sleep(seconds)
    give_up = time.monotonic() + 10  # a watchdog that never sees a block fails its test rather than hang it
    while seen_block is not None and not seen_block.seen() and time.monotonic() < give_up:
        blocking_sleep(0.01)  # still the same block: the hub does not turn in between


class Orders:
    def handle_message(self, seconds, seen_block=None):
        block(seconds, seen_block)


def _run_named(name, fn, *args):
    greenlet = gevent.Greenlet(fn, *args)
    greenlet.name = name
    greenlet.start()
    greenlet.join()


def test_a_blocking_handler_is_named_once_per_minute(caplog):
    seen = []
    watchdog = BlockingWatchdog("orders", 100, on_blocked=lambda stage, handler: seen.append((stage, handler)))
    watchdog.start()
    seen_block = SeenBlock(watchdog.threshold)
    try:
        with caplog.at_level(logging.WARNING, logger="gkbroad.observability.watchdog"):
            for count in (1, 2):
                gevent.sleep(0.1)  # the event loop turns between the two blocks
                _run_named("orders.processor.3", Orders().handle_message, 0.6, seen_block)
                wait_until(lambda count=count: len(seen) >= count, what=f"block {count} to be reported")
    finally:
        seen_block.close()
        watchdog.stop()
    assert seen, "the monitor thread reported no block"
    stage, handler = seen[0]
    assert stage == "orders.processor.3"
    assert handler.startswith("Orders.handle_message (")
    assert "test_watchdog.py" in handler
    warnings = [r for r in caplog.records if r.name == "gkbroad.observability.watchdog"]
    assert len(warnings) == 1  # the second block of the same handler within a minute is only counted
    assert "orders.processor.3" in warnings[0].getMessage()
    assert "blocking_sleep(" in warnings[0].getMessage()  # the stack shows the blocking line
    assert watchdog.blocked == len(seen) == 2  # one block of 0.6 s or more is counted once


def test_a_watchdog_started_before_the_hub_first_ran_still_reports():
    """gevent's monitor thread ended at its first check while the hub had not run yet (a hub not
    started is false), so a program busy for a moment between starting its pipeline and its first
    wait had no watchdog at all; on a loaded machine that was any program. In a process of its own,
    as the hub of this one has run long ago."""
    program = textwrap.dedent(
        """
        import gevent
        from gevent import monkey
        from gkbroad.observability.watchdog import BlockingWatchdog

        blocking_sleep = monkey.get_original("time", "sleep")
        seen = []
        watchdog = BlockingWatchdog("orders", 100, on_blocked=lambda stage, handler: seen.append(stage))
        watchdog.start()
        blocking_sleep(0.3)  # busy before the first wait: the monitor's first checks come before the hub ran
        greenlet = gevent.Greenlet(blocking_sleep, 0.6)
        greenlet.name = "orders.processor.0"
        greenlet.start()
        greenlet.join()
        gevent.sleep(0.2)
        watchdog.stop()
        print(seen)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['orders.processor.0']", done.stderr


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


class BlocksTheHub(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        block(0.7, (context or {}).get("seen_block"))
        return message


def _received_counters(listener):
    counts = {}
    with pytest.raises(socket.timeout):
        while True:
            for line in listener.recv(65536).decode().splitlines():
                name, _, rest = line.partition(":")
                if rest.endswith("|c"):
                    counts[name] = counts.get(name, 0) + int(rest[:-2])
    return counts


def test_a_pipeline_warns_once_naming_stage_and_handler_and_counts_the_block(run_testing, caplog):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.3)
    statsd = {"host": "127.0.0.1", "port": listener.getsockname()[1], "prefix": "app"}
    seen_block = SeenBlock(0.5)  # blocking_warning_ms: 500 by default
    try:
        with caplog.at_level(logging.WARNING, logger="gkbroad.observability.watchdog"):
            pipeline = run_testing(
                BlocksTheHub, name="wd", metrics={"statsd": statsd}, context={"seen_block": seen_block}
            )
            testing.wait_for_ack(pipeline, testing.test_message(pipeline, "x"))
            wait_until(lambda: pipeline.status()["counters"]["hub_blocked"] >= 1, what="the block to be counted")
            gevent.sleep(0.2)
            pipeline.stop()  # flushes the statsd counters
        counts = _received_counters(listener)
    finally:
        seen_block.close()
        listener.close()

    warnings = [r.getMessage() for r in caplog.records if r.name == "gkbroad.observability.watchdog"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("[wd] wd.processor.")
    assert "BlocksTheHub.handle_message (" in warnings[0] and "test_watchdog.py" in warnings[0]
    assert "blocking_sleep(" in warnings[0]  # the stack shows the blocking line
    assert pipeline.status()["counters"]["hub_blocked"] == 1  # one block of 0.7 s or more, counted once
    assert counts.get("app.wd.hub.blocked") == 1, counts
    assert gevent.get_hub().periodic_monitoring_thread is None, "the monitor thread outlived the last watchdog"


@pytest.mark.parametrize(
    "options",
    [{"processors": {"default": {"executor": "thread"}}}, {"blocking_warning_ms": 0}],
    ids=["thread executor", "watchdog off"],
)
def test_no_warning_when_the_hub_is_not_blocked_or_the_watchdog_is_off(run_testing, caplog, options):
    with caplog.at_level(logging.WARNING, logger="gkbroad.observability.watchdog"):
        pipeline = run_testing(BlocksTheHub, name="wd", **options)
        testing.wait_for_ack(pipeline, testing.test_message(pipeline, "x"))
        gevent.sleep(0.3)
    assert [r for r in caplog.records if r.name == "gkbroad.observability.watchdog"] == []
    assert pipeline.status()["counters"]["hub_blocked"] == 0
