"""A measure of how long the gevent hub was held up: a greenlet that ticks at a fixed interval and keeps
the time between its ticks. Tests that promise "the hub kept running while X blocked" read its longest gap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import gevent


class Gaps(list):
    """The seconds between consecutive ticks, in order; `longest` is 0.0 before the second tick."""

    @property
    def longest(self) -> float:
        return max(self, default=0.0)


@contextmanager
def hub_gaps(interval: float = 0.02) -> Iterator[Gaps]:
    """Ticks every `interval` seconds while the block runs; the last gap is noted before the ticker stops."""
    gaps = Gaps()

    def tick() -> None:
        last = time.monotonic()
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = gevent.spawn(tick)
    gevent.sleep(0)  # the ticker's clock starts before the block
    try:
        yield gaps
        gevent.sleep(interval * 2)  # the ticker notices a stall that ended with the block
    finally:
        ticker.kill()
