"""What every stage shares: a named greenlet whose death is reported, never only logged.

A stage greenlet should never end except by finishing its work (STOP) or by
being cancelled by the pipeline's own stop. Anything else escaping `run()` (a
bug in gkbroad or in a producer, a ``SystemExit`` or ``KeyboardInterrupt``
raised by a handler, a kill from elsewhere) is logged with its traceback and
reported through `on_death`, so the pipeline can fail and stop instead of
stalling with the credits and messages that greenlet held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

logger = logging.getLogger(__name__)

STOP = object()
"""Put into a stage's inbox after its last message: the stage finishes that work and exits."""


class Stage:
    """One greenlet running `self.run()`."""

    name = "stage"
    greenlet: gevent.Greenlet[..., Any] | None = None
    cancelled = False
    death: str | None = None  # why the greenlet died, when it did

    def start(self, on_death: Callable[[Stage, str], None]) -> None:
        """Spawn the greenlet; `on_death(stage, reason)` is called if it ends any other way than by finishing."""
        self._on_death = on_death
        self.greenlet = gevent.spawn(self._guarded)
        self.greenlet.name = self.name

    def cancel(self) -> None:
        """Kill the greenlet as part of the pipeline's own stop: not reported as a death."""
        self.cancelled = True
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    @property
    def alive(self) -> bool:
        return self.greenlet is not None and not self.greenlet.dead

    def _guarded(self) -> None:
        try:
            self.run()
        except gevent.GreenletExit:
            if not self.cancelled:
                logger.critical("stage %s was killed from outside the pipeline", self.name)
                self._died("killed from outside the pipeline (GreenletExit)")
        except BaseException as exc:
            logger.critical("stage %s died; the messages it held are not acknowledged", self.name, exc_info=True)
            self._died(f"{type(exc).__name__}: {exc}")

    def _died(self, reason: str) -> None:
        self.death = reason
        self._on_death(self, reason)

    def run(self) -> None:  # pragma: no cover - each stage defines it
        raise NotImplementedError
