"""What every stage shares: a named greenlet whose unexpected death is logged."""

from __future__ import annotations

import logging

import gevent

logger = logging.getLogger(__name__)

STOP = object()
"""Put into a stage's inbox after its last message: the stage finishes that work and exits."""


class Stage:
    """One greenlet running `self.run()`."""

    name = "stage"
    greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._guarded)
        self.greenlet.name = self.name

    def _guarded(self) -> None:
        try:
            self.run()
        except gevent.GreenletExit:
            raise
        except BaseException:
            logger.critical(
                "stage %s died of an internal error; messages it held are not acknowledged", self.name, exc_info=True
            )
            raise

    def run(self) -> None:  # pragma: no cover - each stage defines it
        raise NotImplementedError
