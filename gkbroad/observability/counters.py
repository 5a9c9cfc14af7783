"""The counters every pipeline has: handled, failed, batches, hub blocks, and records/s.

They are always installed as a hook, and read by the status page, the log
summary and the metrics sinks, so each of those reports the same numbers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .hook_protocols import AfterAck, AfterHandleBatch, AfterHubBlocked, AfterPipelineStart

__all__ = ["Counters", "total_lag"]


def total_lag(status: dict[str, Any]) -> int | None:
    """Sum of the known partition lags of a status snapshot; None when no lag is known yet."""
    lags = [p["lag"] for p in status["partitions"] if p["lag"] is not None]
    return sum(lags) if lags else None


class Counters(AfterPipelineStart, AfterHandleBatch, AfterHubBlocked, AfterAck):
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
