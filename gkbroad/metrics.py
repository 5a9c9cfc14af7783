"""The hooks every pipeline can have: counters for the status page, statsd, a periodic log line.

- `Counters` is always installed: handled, failed and batch counts, how often
  the hub was blocked, and the records/s of the last minute, read by the status
  page and the summaries.
- `StatsdSink` is installed by the pipeline option ``metrics = {"statsd": {...}}``.
  It adds up counts and keeps a bounded sample of timings in memory, and one
  greenlet sends them every second (the gauges every ``interval`` seconds), so
  the handling greenlets never wait on a socket and the cost per message is
  an addition.
- `LogSummary` logs one INFO line every 30 s (records/s, failed, lag); the
  `gkbroad run` command turns it on with ``pipeline.hooks.add(LogSummary())``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import statsd
from gevent.event import Event

from .hooks import Hooks

__all__ = ["Counters", "LogSummary", "StatsdSink", "build_hooks", "total_lag"]

logger = logging.getLogger(__name__)


def build_hooks(options: dict) -> Hooks:
    """The hooks a pipeline's validated options ask for: Counters, plus StatsdSink when configured."""
    hooks = Hooks((Counters(),))
    metrics = options.get("metrics")
    if metrics:
        hooks.add(StatsdSink(options["name"], **metrics["statsd"]))
    return hooks


def total_lag(status: dict) -> int | None:
    """Sum of the known partition lags of a status snapshot; None when no lag is known yet."""
    lags = [p["lag"] for p in status["partitions"] if p["lag"] is not None]
    return sum(lags) if lags else None


class Counters:
    """Handled, failed, batch and hub-blocked counts since start, and records/s over the last minute."""

    WINDOW = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.handled = 0
        self.failed = 0
        self.batches = 0
        self.hub_blocked = 0
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic time, handled + failed), >= 1 s apart

    def after_pipeline_start(self, pipeline: Any) -> None:
        self._samples.append((self._clock(), self.handled + self.failed))

    def after_handle_batch(self, batcher: str, size: int, duration: float) -> None:
        self.batches += 1

    def after_hub_blocked(self, stage: str, handler: str) -> None:
        self.hub_blocked += 1

    def after_ack(self, successful: int, failed: int) -> None:
        self.handled += successful
        self.failed += failed
        now = self._clock()
        if not self._samples or now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, self.handled + self.failed))
            self._trim(now)

    def rate(self) -> float:
        """Records acknowledged per second over the last minute (or since start, if shorter)."""
        now = self._clock()
        self._trim(now)
        if not self._samples:
            return 0.0
        since, base = self._samples[0]
        elapsed = now - since
        return (self.handled + self.failed - base) / elapsed if elapsed > 0 else 0.0

    def _trim(self, now: float) -> None:
        # Keep the newest sample at least WINDOW old as the base of the rate.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.WINDOW:
            self._samples.popleft()


class StatsdSink:
    """Counters, timers and gauges to statsd, every name under ``<prefix>.<pipeline name>.``."""

    FLUSH_INTERVAL = 1.0
    TIMER_SAMPLES = 100  # timings sent per timer per flush, a uniform sample of those seen

    def __init__(self, pipeline_name: str, host: str, port: int, prefix: str, interval: int):
        self.host, self.port = host, port
        self.prefix = f"{prefix}.{_metric_part(pipeline_name)}"
        self.interval = interval
        self.client: statsd.StatsClient | None = None
        self._counts = {"messages.handled": 0, "messages.failed": 0, "batches.handled": 0, "hub.blocked": 0}
        self._timers = {name: _Sample(self.TIMER_SAMPLES) for name in ("handle_message", "handle_batch", "commit")}
        self._loops: list[Periodic] = []

    def after_pipeline_start(self, pipeline: Any) -> None:
        self.client = statsd.StatsClient(self.host, self.port, prefix=self.prefix)
        self._loops = [
            Periodic(self.FLUSH_INTERVAL, self.flush, f"{pipeline.name}.statsd"),
            Periodic(self.interval, lambda: self.send_gauges(pipeline.status()), f"{pipeline.name}.statsd-gauges"),
        ]

    def before_pipeline_stop(self, pipeline: Any) -> None:
        for loop in self._loops:
            loop.stop()
        if self.client is not None:
            self.send_gauges(pipeline.status())
            self.flush()

    def after_handle_messages(self, durations: list[float]) -> None:
        sample = self._timers["handle_message"]
        for duration in durations:
            sample.add(duration)

    def after_handle_batch(self, batcher: str, size: int, duration: float) -> None:
        self._counts["batches.handled"] += 1
        self._timers["handle_batch"].add(duration)

    def after_hub_blocked(self, stage: str, handler: str) -> None:
        self._counts["hub.blocked"] += 1

    def after_ack(self, successful: int, failed: int) -> None:
        self._counts["messages.handled"] += successful
        self._counts["messages.failed"] += failed

    def after_commit(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        self._timers["commit"].add(duration)

    def flush(self) -> None:
        """Send the counts and timings gathered since the last flush."""
        counts = {name: count for name, count in self._counts.items() if count}
        self._counts = dict.fromkeys(self._counts, 0)
        timings = {name: sample.take() for name, sample in self._timers.items()}
        with self.client.pipeline() as pipe:
            for name, count in counts.items():
                pipe.incr(name, count)
            for name, values in timings.items():
                for seconds in values:
                    pipe.timing(name, seconds * 1000.0)

    def send_gauges(self, status: dict) -> None:
        """in_flight, partitions.assigned and lag.<topic>.<partition> for every partition with a known lag."""
        with self.client.pipeline() as pipe:
            pipe.gauge("in_flight", status["in_flight"])
            pipe.gauge("partitions.assigned", len(status["partitions"]))
            for p in status["partitions"]:
                if p["lag"] is not None:
                    pipe.gauge(f"lag.{_metric_part(p['topic'])}.{p['partition']}", max(p["lag"], 0))


class LogSummary:
    """One INFO line every `interval` seconds while the pipeline runs: records/s, counts, lag."""

    def __init__(self, interval: float = 30.0):
        self.interval = interval
        self._loop: Periodic | None = None

    def after_pipeline_start(self, pipeline: Any) -> None:
        self._loop = Periodic(self.interval, lambda: self.log(pipeline.status()), f"{pipeline.name}.summary")

    def before_pipeline_stop(self, pipeline: Any) -> None:
        if self._loop is not None:
            self._loop.stop()

    @staticmethod
    def log(status: dict) -> None:
        counters = status["counters"]
        lag = total_lag(status)
        logger.info(
            "[%s] %.1f records/s, %d handled, %d failed, lag %s over %d partition(s)",
            status["name"],
            status["records_per_second"],
            counters["handled"],
            counters["failed"],
            "unknown" if lag is None else lag,
            len(status["partitions"]),
        )


class Periodic:
    """Calls `function` every `interval` seconds in its own greenlet until stop(); a failure is logged once."""

    def __init__(self, interval: float, function: Callable[[], None], name: str):
        self._stop = Event()
        self._failed = False
        self.greenlet = gevent.spawn(self._run, interval, function)
        self.greenlet.name = name

    def _run(self, interval: float, function: Callable[[], None]) -> None:
        while not self._stop.wait(interval):
            try:
                function()
            except Exception:
                if not self._failed:
                    self._failed = True
                    logger.exception("%s failed; it keeps running (not logged again)", self.greenlet.name)

    def stop(self) -> None:
        self._stop.set()


class _Sample:
    """A uniform random sample of at most `size` of the values added since the last take() (reservoir sampling)."""

    def __init__(self, size: int):
        self.size = size
        self.seen = 0
        self.values: list[float] = []

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < self.size:
                self.values[slot] = value

    def take(self) -> list[float]:
        values, self.values, self.seen = self.values, [], 0
        return values


def _metric_part(text: str) -> str:
    """`text` made safe inside a statsd name (the line protocol reserves ':', '|' and '@')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
