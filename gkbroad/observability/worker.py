"""Which worker of ``gkbroad run --processes N`` this process is, read from its environment.

The supervisor (gkbroad.supervisor) starts every worker with
``GKBROAD_WORKER_INDEX`` (0 to N-1, stable across restarts) and
``GKBROAD_WORKER_COUNT`` (N) in its environment. Whatever names or labels
something per process reads them here: the statsd names, the log lines, and
any sink that has to tell the workers' numbers apart. A process not started by
a supervisor has neither variable and is no worker.
"""

from __future__ import annotations

import os

from ..errors import ConfigError

__all__ = ["WORKER_COUNT_ENV", "WORKER_INDEX_ENV", "worker_count", "worker_index"]

WORKER_INDEX_ENV = "GKBROAD_WORKER_INDEX"
WORKER_COUNT_ENV = "GKBROAD_WORKER_COUNT"


def worker_index() -> int | None:
    """This worker's index, or None outside a supervised worker; ConfigError when the variable is malformed."""
    return _read(WORKER_INDEX_ENV, minimum=0)


def worker_count() -> int | None:
    """How many workers the supervisor runs, or None outside a supervised worker."""
    return _read(WORKER_COUNT_ENV, minimum=1)


def _read(name: str, minimum: int) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < minimum:
        raise ConfigError(
            f"{name}: expected an integer >= {minimum} (gkbroad run --processes sets it for its workers), got {text!r}"
        )
    return int(text)
