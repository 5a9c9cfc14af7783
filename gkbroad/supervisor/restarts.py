"""When a dead worker is started again, and when it has died too often for that.

A worker's deaths are counted over a sliding window (``[run] restart_window``).
Each death within the window doubles the wait before the next start, from
``restart_backoff`` up to `MAX_BACKOFF`; a worker that stayed up for a whole
window starts again from the first wait. One death more than ``max_restarts``
within the window is a crash loop: the supervisor stops instead of restarting
for ever, since a worker that dies at every start will not heal by itself.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MAX_BACKOFF", "RestartPolicy", "exit_reason"]

MAX_BACKOFF = 30.0


class RestartPolicy:
    """The restart decisions for one worker; times in seconds."""

    def __init__(
        self, max_restarts: int, window: float, backoff: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_restarts = max_restarts
        self.window = window
        self.backoff = backoff
        self._clock = clock
        self._deaths: deque[float] = deque()

    def after_death(self) -> float | None:
        """Record a death now: the seconds to wait before starting the worker again,
        or None when it died more than max_restarts times within the window."""
        now = self._clock()
        self._deaths.append(now)
        while self._deaths[0] <= now - self.window:
            self._deaths.popleft()
        if len(self._deaths) > self.max_restarts:
            return None
        return float(min(self.backoff * 2 ** (len(self._deaths) - 1), MAX_BACKOFF))

    @property
    def deaths_in_window(self) -> int:
        return len(self._deaths)


def exit_reason(returncode: int) -> str:
    """How a process ended, from its Popen return code (negative: the signal that killed it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"
