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

The thread runs the call in a copy of the calling greenlet's context
(`contextvars`), so what the greenlet set there (the current OpenTelemetry
span, for one) is what the handler sees, as it would on the greenlet.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any, TypeAlias, TypeVar, cast

from gevent.threadpool import ThreadPool

__all__ = ["EXECUTORS", "Call", "Executor", "GreenletExecutor", "StageExecutors", "ThreadExecutor", "build_executor"]

T = TypeVar("T")

EXECUTORS = ("greenlet", "thread")


class GreenletExecutor:
    """Calls user code directly on the calling stage greenlet (the default)."""

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    def bind(self, function: Callable[..., T]) -> Callable[..., T]:
        """`function` called the way `call` would call it: here, itself."""
        return function

    def close(self) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Calls user code in a native thread; the calling greenlet yields to the hub meanwhile.

    Whatever the call raises (a `SystemExit` included) is raised again in the
    calling greenlet, with its traceback, exactly as if the call had run there:
    the thread never lets it reach gevent, which would print it and send
    `SystemExit` or `KeyboardInterrupt` to the main greenlet instead.

    Killing the calling greenlet stops the wait, not the call: a thread cannot
    be interrupted, so it finishes the call and drops the result.
    """

    def __init__(self, size: int):
        self.pool = ThreadPool(size)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        context = contextvars.copy_context()
        raised, outcome = self.pool.apply(_capture, (context.run, (function, *args)))
        if raised:
            raise outcome
        return cast(T, outcome)  # what `function` returned

    def bind(self, function: Callable[..., T]) -> Callable[..., T]:
        """`function` called the way `call` would call it: in the pool."""
        return partial(self.call, function)

    def close(self) -> None:
        """Let the threads end once their current call returns, without waiting for that: a call
        cannot be interrupted, and a pipeline stop must not wait past its shutdown timeout."""
        self.pool.maxsize = 0


def _capture(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """Runs in the pool's thread: (False, result), or (True, the exception raised)."""
    try:
        return False, function(*args)
    except BaseException as exc:
        return True, exc


Executor = GreenletExecutor | ThreadExecutor

Call: TypeAlias = Callable[..., Any]
"""``call(function, *args)``: an executor's `call`, or a hook's wrapper around it (Hooks.around_message)."""


def build_executor(kind: str, size: int) -> Executor:
    """The executor an ``executor`` stage option names, for a stage of ``size`` greenlets."""
    return ThreadExecutor(size) if kind == "thread" else GreenletExecutor()


class StageExecutors:
    """The executor of each processor and each batcher of a pipeline, from its validated options.

    A stage's greenlets share its executor; a thread pool has one thread per
    greenlet, so every lane always has a thread to run its call.
    """

    def __init__(self, options: dict[str, Any]):
        self._processors = {
            name: build_executor(stage["executor"], stage["concurrency"])
            for name, stage in options["processors"].items()
        }
        self._batchers = {
            name: build_executor(stage["executor"], stage["concurrency"]) for name, stage in options["batchers"].items()
        }

    def processor(self, name: str) -> Executor:
        return self._processors[name]

    def bind_processors(self, function: Callable[..., T]) -> dict[str, Callable[..., T]]:
        """{processor name: `function` bound to that processor's executor}, for a call made per message."""
        return {name: executor.bind(function) for name, executor in self._processors.items()}

    def batcher(self, name: str) -> Executor:
        return self._batchers[name]

    def close(self) -> None:
        """Release the thread pools once the stages are done with them."""
        for executor in (*self._processors.values(), *self._batchers.values()):
            executor.close()
