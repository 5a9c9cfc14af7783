"""The last 15 minutes of a pipeline, sampled every few seconds, for the status page's charts.

Every pipeline has this hook. One greenlet takes a sample every `interval`
seconds (default 5) into a ring buffer of `capacity` samples (default 180:
15 minutes): the records handled and failed per second since the previous
sample, and the total lag. It also keeps each partition's lag of about a
minute ago, so the status page can say whether a lag is rising or falling.
A sample is a few numbers, so the buffer stays a few kilobytes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .counters import Counters, total_lag
from .hook_protocols import AfterPipelineStart, BeforePipelineStop
from .periodic import Periodic

__all__ = ["Trends", "lag_trend"]

TREND_WINDOW = 60.0  # seconds: a partition's lag is compared with its lag this long ago


def lag_trend(now: int | None, before: int | None) -> str | None:
    """ "rising", "falling" or "steady" from a lag `before` to its lag `now`; None when either is unknown."""
    if now is None or before is None:
        return None
    if now > before:
        return "rising"
    return "falling" if now < before else "steady"


class Trends(AfterPipelineStart, BeforePipelineStop):
    """Samples of throughput, failures and total lag; `clock` is wall time (the samples carry it)."""

    def __init__(self, interval: float = 5.0, capacity: int = 180, clock: Callable[[], float] = time.time):
        self.interval = interval
        self._clock = clock
        self._samples: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._lags: deque[tuple[float, dict[tuple[str, int], int]]] = deque()  # (time, lag per partition)
        self._last: tuple[float, int, int] | None = None  # (time, handled, failed) of the previous sample
        self._loop: Periodic | None = None

    def after_pipeline_start(self, pipeline: Any) -> None:
        counters = pipeline.hooks.find(Counters)
        self._last = (self._clock(), counters.handled, counters.failed)
        self._loop = Periodic(self.interval, lambda: self.sample(pipeline.status()), f"{pipeline.name}.trends")

    def before_pipeline_stop(self, pipeline: Any) -> None:
        if self._loop is not None:
            self._loop.stop()

    def sample(self, status: dict[str, Any]) -> None:
        """Add the sample of a status snapshot (the counters and partitions of gkbroad.observability.status)."""
        now = self._clock()
        handled, failed = status["counters"]["handled"], status["counters"]["failed"]
        since, handled_before, failed_before = self._last or (now, handled, failed)
        elapsed = now - since
        self._samples.append(
            {
                "time": round(now, 1),
                "handled_per_second": round((handled - handled_before) / elapsed, 2) if elapsed > 0 else 0.0,
                "failed_per_second": round((failed - failed_before) / elapsed, 2) if elapsed > 0 else 0.0,
                "lag": total_lag(status),
            }
        )
        self._last = (now, handled, failed)
        lags = {(p["topic"], p["partition"]): p["lag"] for p in status["partitions"] if p["lag"] is not None}
        self._lags.append((now, lags))
        while len(self._lags) > 1 and self._lags[1][0] <= now - TREND_WINDOW:
            self._lags.popleft()

    def samples(self) -> list[dict[str, Any]]:
        """The samples, oldest first."""
        return list(self._samples)

    def lag_before(self, topic: str, partition: int) -> int | None:
        """The partition's lag in the oldest sample kept for the trend (about TREND_WINDOW ago) that knows it."""
        key = (topic, partition)
        return next((lags[key] for _, lags in self._lags if key in lags), None)
