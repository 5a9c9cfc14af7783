"""Flow control shared by the stages: demand credits and the producers' rate limit.

Both block the calling greenlet only, and both give up at once when the
pipeline's `cancel` event is set, so a stopping pipeline never waits on them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import Event

__all__ = ["Credits", "RateLimiter"]


class Credits:
    """How many more messages the processors may be given.

    Producers take credits before asking their producer for messages and hand
    back what they did not use; processors give credits back once a message
    left them (acknowledged, or handed to a batcher). So the processors never
    hold more than `total` messages, however fast the producers could go.

    Waiting producers are served first come, first served: freed credits are
    handed to the longest waiter rather than left for whichever greenlet runs
    next, or a producer that never waits (it always has data) would take every
    credit and starve the others.
    """

    def __init__(self, total: int):
        self.total = total
        self.available = total
        self._waiters: deque[_Waiter] = deque()

    @property
    def in_use(self) -> int:
        return self.total - self.available

    def take(self, most: int, cancel: Event) -> int:
        """Wait until at least one credit is free, then take up to `most`; 0 if cancelled."""
        if self.available > 0 and not self._waiters:
            taken = min(most, self.available)
            self.available -= taken
            return taken
        waiter = _Waiter(most)
        self._waiters.append(waiter)
        gevent.wait([waiter.ready, cancel], count=1)
        if cancel.is_set():
            if waiter.ready.is_set():
                self.give(waiter.granted)
            else:
                self._waiters.remove(waiter)
            return 0
        return waiter.granted

    def give(self, count: int) -> None:
        self.available += count
        while self._waiters and self.available > 0:
            waiter = self._waiters.popleft()
            waiter.granted = min(waiter.most, self.available)
            self.available -= waiter.granted
            waiter.ready.set()


class _Waiter:
    __slots__ = ("most", "granted", "ready")

    def __init__(self, most: int):
        self.most = most
        self.granted = 0
        self.ready = Event()


class RateLimiter:
    """At most `allowed` messages per `interval_ms` window, for all producers together."""

    def __init__(self, allowed: int, interval_ms: int, clock: Callable[[], float] = time.monotonic):
        self.allowed = allowed
        self.interval = interval_ms / 1000.0
        self._clock = clock
        self._window_start = clock()
        self._left = allowed

    def _refill(self) -> None:
        now = self._clock()
        if now - self._window_start >= self.interval:
            self._window_start = now
            self._left = self.allowed

    def take(self, most: int, cancel: Event) -> int:
        """Wait for the window to have room, then take up to `most`; 0 if cancelled."""
        self._refill()
        while self._left <= 0:
            wait = self._window_start + self.interval - self._clock()
            if cancel.wait(max(wait, 0.001)):
                return 0
            self._refill()
        taken = min(most, self._left)
        self._left -= taken
        return taken

    def give_back(self, count: int) -> None:
        """Return what was taken but not produced, so a slow producer does not waste the window."""
        self._left = min(self.allowed, self._left + count)
