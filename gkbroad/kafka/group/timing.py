"""Time in the consumer group: retry backoff, rate-limited warnings, the stop budget.

Every retry loop of the consumer group (connecting, polling, committing)
waits with a ``Backoff`` so that no error path can spin, and repeated
warnings (brokers unreachable, a topic missing) go through ``Every`` so the
log says them once per interval instead of once per attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import overload

from gevent.event import Event

from ...engine.backoff import Backoff

__all__ = ["Backoff", "Every", "Shutdown", "COMMIT_BACKOFF_MAX", "CONNECT_BACKOFF_MAX", "POLL_BACKOFF_MAX"]

# Commits usually fail because a rebalance is under way, which is over soon.
CONNECT_BACKOFF_MAX, POLL_BACKOFF_MAX, COMMIT_BACKOFF_MAX = 5.0, 5.0, 1.0


class Every:
    """True at most once per ``interval`` seconds: ``if every.due(): log...``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        """The condition ended: the next ``due()`` is True at once."""
        self._last = None


class Shutdown:
    """The group's stop request and its time budget, shared by the parts that
    wait during a stop: each wait takes at most what is left of the budget."""

    def __init__(self) -> None:
        self._event = Event()
        self._deadline: float | None = None

    def request(self, timeout: float | None) -> None:
        """Ask the group to stop within ``timeout`` seconds (None: no limit)."""
        if not self._event.is_set():
            self._deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @overload
    def remaining(self, cap: float) -> float: ...

    @overload
    def remaining(self, cap: None = None) -> float | None: ...

    def remaining(self, cap: float | None = None) -> float | None:
        """Seconds left of the budget, at most ``cap``; None when neither limits it."""
        if self._deadline is None:
            return cap
        left = max(self._deadline - time.monotonic(), 0.0)
        return left if cap is None else min(left, cap)

    def wait(self, seconds: float | None) -> bool:
        """Sleep up to ``seconds`` on the hub, waking at once when a stop is
        requested; True if it was."""
        return self._event.wait(seconds)
