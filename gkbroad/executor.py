"""Where a stage runs user callbacks: on its own greenlet, or in a native thread.

gevent turns blocking calls into cooperative waits only when they go through
patched Python I/O. A call that blocks in C (psycopg2 or mysqlclient waiting
on the network, a C extension, a long computation that releases the GIL)
stops every greenlet of the process. With ``executor="thread"`` a stage hands
each callback call to a pool of native threads, sized by the stage's
concurrency, and its greenlet waits cooperatively for the result, so the hub
keeps running heartbeats, other handlers and the status page. Everything else
stays the same: the stage greenlet still makes one call at a time, so ordering,
acknowledgement, retries and failure handling do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gevent.threadpool import ThreadPool

__all__ = ["EXECUTORS", "GreenletExecutor", "ThreadExecutor", "build_executor"]

T = TypeVar("T")

EXECUTORS = ("greenlet", "thread")


class GreenletExecutor:
    """Calls user code directly on the calling stage greenlet (the default)."""

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    def close(self) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Calls user code in a native thread; the calling greenlet yields to the hub meanwhile.

    An exception raised by the call is raised again in the calling greenlet,
    with its traceback, exactly as if the call had run there.
    """

    def __init__(self, size: int):
        self.pool = ThreadPool(size)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return self.pool.apply(function, args)

    def close(self) -> None:
        """Let the threads end once their current call returns (a call cannot be interrupted)."""
        self.pool.kill()


def build_executor(kind: str, size: int) -> GreenletExecutor | ThreadExecutor:
    """The executor an ``executor`` stage option names, for a stage of ``size`` greenlets."""
    return ThreadExecutor(size) if kind == "thread" else GreenletExecutor()
