"""Exponential backoff with jitter: how long to wait before the next try of something failing.

Every retry loop of gkbroad (a handler's retries, a dead-letter write, the
consumer group's connects, polls and commits) waits this way, so no error
path can spin, and many greenlets failing at once do not retry in lockstep.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay"]

JITTER = 0.2  # each delay is drawn from +-20 % around its nominal value


def backoff_delay(failures: int, first: float, limit: float) -> float:
    """The wait after `failures` consecutive failures (1 for the first): `first`, doubled for
    each further failure, capped at `limit`, with jitter. Same unit as `first` and `limit`."""
    nominal = min(limit, first * 2.0 ** min(max(failures - 1, 0), 62))
    return nominal * random.uniform(1 - JITTER, 1 + JITTER)


class Backoff:
    """The delays of one failing operation, growing until `reset()` (seconds)."""

    def __init__(self, limit: float, first: float = 0.1):
        self.limit = limit
        self.first = first
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles it, up to ``limit``."""
        self.failures += 1
        return backoff_delay(self.failures, self.first, self.limit)

    def reset(self) -> None:
        self.failures = 0
