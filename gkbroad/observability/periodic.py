"""A greenlet that calls a function at a fixed interval, for the reporting hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
from gevent.event import Event

__all__ = ["Periodic"]

logger = logging.getLogger(__name__)


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
