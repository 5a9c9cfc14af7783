"""Stage hooks: what the dispatcher reports, that a failing hook never breaks the pipeline,
and the hooks of gkbroad.observability (Counters, LogSummary, StatsdSink with a real UDP socket)."""

from __future__ import annotations

import logging
import socket

import gevent
import pytest
import statsd

import gkbroad
from gkbroad import ConfigError, testing
from gkbroad.observability import Counters, LogSummary, StatsdSink
from gkbroad.observability.hooks import Hooks
from tests.helpers.support import wait_until


class Passing(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        if message.data == "bad":
            return message.failed("bad data")
        gevent.sleep(0.001)
        return message

    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


class Recorder:
    """A hook that records every call it receives."""

    def __init__(self):
        self.calls = []

    def after_pipeline_start(self, pipeline):
        self.calls.append(("start", pipeline.name))

    def before_pipeline_stop(self, pipeline):
        self.calls.append(("stop", pipeline.name))

    def after_pipeline_stop(self, pipeline, clean):
        self.calls.append(("stopped", pipeline.name, clean))

    def after_handle_messages(self, durations):
        self.calls.append(("messages", len(durations), sum(d >= 0.001 for d in durations)))

    def after_handle_batch(self, batcher, size, duration):
        self.calls.append(("batch", batcher, size))

    def after_ack(self, successful, failed):
        self.calls.append(("ack", successful, failed))


def built(batchers=None, **options):
    return Passing(
        name="hooks",
        producer={"module": testing.DummyProducer},
        processors={"default": {"concurrency": 2}},
        batchers=batchers or {},
        **options,
    )


def run_data(pipeline, data):
    pipeline.start()
    try:
        ref = testing.test_batch(pipeline, data)
        return testing.wait_for_ack(pipeline, ref)
    finally:
        pipeline.stop()


def test_hooks_see_every_message_batch_and_ack_once():
    pipeline = built(batchers={"default": {"batch_size": 3, "batch_timeout": 50}})
    recorder = Recorder()
    pipeline.hooks.add(recorder)
    successful, failed = run_data(pipeline, ["a", "b", "bad", "c", "d"])
    assert (len(successful), len(failed)) == (4, 1)

    assert recorder.calls[0] == ("start", "hooks")
    assert recorder.calls[-2:] == [("stop", "hooks"), ("stopped", "hooks", True)]
    timed = [c for c in recorder.calls if c[0] == "messages"]
    assert sum(c[1] for c in timed) == 5, "one duration per handle_message call"
    assert sum(c[2] for c in timed) == 4, "the 4 good messages' durations include the handler's sleep"
    batches = [c for c in recorder.calls if c[0] == "batch"]
    assert sum(c[2] for c in batches) == 4 and all(c[1] == "default" for c in batches)
    acks = [c for c in recorder.calls if c[0] == "ack"]
    assert sum(c[1] for c in acks) == 4 and sum(c[2] for c in acks) == 1
    assert len(acks) < 5, "acknowledgements are reported per chunk or batch, not per message"


def test_a_failing_hook_is_logged_once_and_the_pipeline_goes_on(caplog):
    class Broken:
        def after_ack(self, successful, failed):
            raise RuntimeError("statsd is down")

    pipeline = built()
    pipeline.hooks.add(Broken())
    counters = pipeline.hooks.find(Counters)
    pipeline.start()
    try:
        for i in range(5):
            ref = testing.test_message(pipeline, f"m{i}")
            assert len(testing.wait_for_ack(pipeline, ref)[0]) == 1
    finally:
        pipeline.stop()
    errors = [r for r in caplog.records if r.name == "gkbroad.observability.hooks" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "statsd is down" in errors[0].exc_text
    assert counters.handled == 5, "hooks after the failing one still run"


def test_an_object_without_hook_methods_is_refused():
    with pytest.raises(ConfigError, match="defines none of"):
        Hooks((object(),))


def test_counters_count_and_rate():
    pipeline = built(batchers={"default": {"batch_size": 2, "batch_timeout": 50}})
    run_data(pipeline, ["a", "bad", "b", "c"])
    counters = pipeline.hooks.find(Counters)
    assert (counters.handled, counters.failed, counters.batches) == (3, 1, 2)
    assert counters.rate() > 0


def test_the_rate_covers_the_last_minute_only():
    now = [0.0]
    counters = Counters(clock=lambda: now[0])
    counters.after_pipeline_start(None)
    assert counters.rate() == 0.0
    for second in range(1, 121):  # 10 records/s for two minutes, then 1 record/s
        now[0] = float(second)
        counters.after_ack(10 if second <= 60 else 1, 0)
    assert counters.rate() == pytest.approx(1.0, abs=0.05)
    now[0] = 150.0
    assert counters.rate() == pytest.approx(30 / 60, abs=0.05), "quiet seconds lower the rate"


def test_log_summary_logs_a_line_while_running(caplog):
    caplog.set_level(logging.INFO, logger="gkbroad.observability.log_summary")
    pipeline = built()
    pipeline.hooks.add(LogSummary(interval=0.1))
    pipeline.start()
    try:
        testing.wait_for_ack(pipeline, testing.test_message(pipeline, "x"))
        wait_until(lambda: any("records/s" in r.getMessage() for r in caplog.records), what="a summary line")
    finally:
        pipeline.stop()
    line = next(r.getMessage() for r in caplog.records if "records/s" in r.getMessage())
    assert line.startswith("[hooks] ") and "1 handled, 0 failed" in line


def test_statsd_sink_sends_counters_timers_and_gauges_to_udp():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    pipeline = built(
        batchers={"default": {"batch_size": 2, "batch_timeout": 50}},
        metrics={"statsd": {"host": "127.0.0.1", "port": port, "prefix": "app", "interval": 1}},
    )
    run_data(pipeline, ["a", "b", "bad", "c", "d"])  # stop() flushes
    lines = []
    with pytest.raises(socket.timeout):
        while True:
            lines += listener.recv(65536).decode().splitlines()
    listener.close()
    assert all(line.startswith("app.hooks.") for line in lines), lines
    counts = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if rest.endswith("|c"):
            counts[name] = counts.get(name, 0) + int(rest[:-2])
    assert counts == {
        "app.hooks.messages.handled": 4,
        "app.hooks.messages.failed": 1,
        "app.hooks.batches.handled": 2,
        # DummyProducer's acknowledger names no partition
        "app.hooks.partition.-.-.handled": 4,
        "app.hooks.partition.-.-.failed": 1,
    }
    assert sum(1 for line in lines if line.startswith("app.hooks.handle_message:") and line.endswith("|ms")) == 5
    assert any(line.startswith("app.hooks.handle_batch:") for line in lines)
    assert "app.hooks.in_flight:0|g" in lines and "app.hooks.partitions.assigned:0|g" in lines


def test_an_unreachable_statsd_host_is_logged_once_and_the_pipeline_runs(caplog):
    pipeline = built(metrics={"statsd": {"host": "no-such-host.invalid"}})
    successful, _ = run_data(pipeline, ["a", "b"])
    assert len(successful) == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "after_pipeline_start" in errors[0].getMessage(), [r.getMessage() for r in errors]


def test_bad_metrics_options_name_the_option():
    with pytest.raises(ConfigError, match=r"metrics\.statsd\.port: must be a positive integer, got 'x'"):
        built(metrics={"statsd": {"port": "x"}})
    with pytest.raises(ConfigError, match=r"stuck_handler_timeout: must be a positive integer, got 0"):
        built(stuck_handler_timeout=0)


def test_statsd_sink_counts_partitions_retries_dead_letters_and_rebalances():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    sink = StatsdSink("events", "127.0.0.1", listener.getsockname()[1], "app", 1)
    sink.client = statsd.StatsClient("127.0.0.1", listener.getsockname()[1], prefix=sink.prefix)
    sink.after_ack_by_partition({("orders", "0"): (3, 1), ("orders", "1"): (2, 0)})
    sink.after_ack_by_partition({("orders", "0"): (1, 0)})
    sink.after_retry("in_place", 1)
    sink.after_retry("topic", 2)
    sink.after_dead_letter(4)
    for reason in ("assigned", "assigned", "revoked", "lost"):
        sink.after_rebalance("orders", 0, reason)
    sink.flush()
    lines = []
    with pytest.raises(socket.timeout):
        while True:
            lines += listener.recv(65536).decode().splitlines()
    listener.close()
    assert sorted(lines) == sorted(
        [
            "app.events.partition.orders.0.handled:4|c",
            "app.events.partition.orders.0.failed:1|c",
            "app.events.partition.orders.1.handled:2|c",
            "app.events.retries.in_place:1|c",
            "app.events.retries.topic:2|c",
            "app.events.dead_letters.written:4|c",
            "app.events.rebalance.assigned:2|c",
            "app.events.rebalance.revoked:1|c",
            "app.events.rebalance.lost:1|c",
        ]
    )
