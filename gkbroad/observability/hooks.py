"""Stage hooks: how metrics, status pages and log summaries see what a pipeline does.

A hook is any object that defines some of the methods below (the style of
dramatiq's middleware); the pipeline's `Hooks` dispatcher calls the ones it
defines and skips the rest, so a new sink needs no change to the stages. Each
method has its Protocol in hook_protocols.py (exported by gkbroad.observability),
for type checkers and editors:

    after_pipeline_start(pipeline)          the stages and services are running
    before_pipeline_stop(pipeline)          stop() begins (services still hold their partitions)
    after_pipeline_stop(pipeline, clean)    the stop is over; `clean` is what stop() returns
    after_handle_messages(durations)        seconds each handle_message call took, reported
                                            once per processor chunk, not once per message
    after_handle_batch(batcher, size, duration)
    after_ack(successful, failed)           how many messages were acknowledged, per chunk or batch
    after_hub_blocked(stage, handler)       a stage held the gevent hub past blocking_warning_ms
                                            (gkbroad.observability.watchdog; called in the hub's thread once it is free)
    after_commit(duration, partitions)      a service (the Kafka consumer group) committed offsets of
                                            these (topic, partition) pairs; the commit took `duration` s
    around_handle_message(message, call, function, *args)
                                            wraps each handle_message call: must return
                                            ``call(function, *args)`` (tracing opens a span around it)
    around_handle_batch(batcher, messages, call, function, *args)
                                            the same around each handle_batch call

The two around hooks run in the stage's greenlet, where the executor then
makes the call (on that greenlet or in a thread that sees its context). They
are not guarded like the others: what they raise is what the handler raised.
With none registered, `around_message` hands back the executor's own `call`,
so a pipeline without tracing pays one method call per message.

Hooks run in the pipeline's greenlets, so they must be quick and must not
block; a hook that needs I/O (statsd) buffers and sends from its own greenlet.
A hook that raises is logged once (with its traceback) and then ignored: a
metrics problem never stops a pipeline.

The dispatcher also keeps, for the /healthz rule on stuck handlers, the start
time of every handler call in progress. Timing each handle_message call costs a
few hundred nanoseconds, so it is done only once someone needs it: a hook with
after_handle_messages, or a status page (`track_calls()`); handle_batch calls
are always timed, their cost is spread over a whole batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from gevent import getcurrent

from ..engine.executor import Call
from ..errors import ConfigError
from ..message import Message
from .hook_protocols import Hook

__all__ = ["HOOK_METHODS", "Hooks"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

HOOK_METHODS = (
    "after_pipeline_start",
    "before_pipeline_stop",
    "after_pipeline_stop",
    "after_handle_messages",
    "after_handle_batch",
    "after_ack",
    "after_hub_blocked",
    "after_commit",
    "around_handle_message",
    "around_handle_batch",
)


class Hooks:
    """Calls the hook methods each registered hook defines; used by gkbroad.engine.callbacks and Pipeline."""

    def __init__(self, hooks: Iterable[Hook] = ()):
        self._hooks: list[Hook] = []
        self._methods: dict[str, list[tuple[Hook, Callable[..., object]]]] = {name: [] for name in HOOK_METHODS}
        self._failed: set[tuple[int, str]] = set()
        self._calls: dict[Any, float] = {}  # greenlet -> monotonic start of its handler call
        self._durations: list[float] = []
        self.timing = False  # whether handle_message calls are timed (see the module docstring)
        self.wraps_messages = False  # whether an around_handle_message hook is registered
        for hook in hooks:
            self.add(hook)

    def add(self, hook: Hook) -> None:
        """Register a hook; add hooks before start() so they see the whole run."""
        known = [name for name in HOOK_METHODS if callable(getattr(hook, name, None))]
        if not known:
            raise ConfigError(f"{hook!r} is not a hook: it defines none of {', '.join(HOOK_METHODS)}")
        self._hooks.append(hook)
        for name in known:
            self._methods[name].append((hook, getattr(hook, name)))
        if "after_handle_messages" in known:
            self.timing = True
        if "around_handle_message" in known:
            self.wraps_messages = True

    def track_calls(self) -> None:
        """Time every handle_message call from now on, so that longest_call() sees them."""
        self.timing = True

    def find(self, kind: type[_T]) -> _T | None:
        """The first registered hook that is an instance of `kind`, or None."""
        return next((hook for hook in self._hooks if isinstance(hook, kind)), None)

    # -- called around user code by gkbroad.engine.callbacks --------------------

    def call_started(self) -> float:
        """Note that the current greenlet entered a handler; returns the start time for the matching *_done."""
        started = time.monotonic()
        self._calls[getcurrent()] = started
        return started

    def message_done(self, started: float) -> None:
        del self._calls[getcurrent()]
        if self._methods["after_handle_messages"]:
            self._durations.append(time.monotonic() - started)

    def batch_done(self, batcher: str, size: int, started: float) -> None:
        del self._calls[getcurrent()]
        self._emit("after_handle_batch", batcher, size, time.monotonic() - started)

    def around_message(self, message: Message, call: Call) -> Call:
        """`call` with the around_handle_message hooks wrapped around it (the first registered outermost);
        `call` itself when there are none."""
        return self._around("around_handle_message", call, message)

    def around_batch(self, batcher: str, messages: list[Message], call: Call) -> Call:
        """`call` with the around_handle_batch hooks wrapped around it; `call` itself when there are none."""
        return self._around("around_handle_batch", call, batcher, messages)

    def _around(self, name: str, call: Call, *subject: Any) -> Call:
        for _, method in reversed(self._methods[name]):
            call = partial(method, *subject, call)
        return call

    def acked(self, successful: int, failed: int) -> None:
        """Once per acknowledged chunk or batch; also hands over the handle_message timings gathered so far."""
        if self._durations:
            durations, self._durations = self._durations, []
            self._emit("after_handle_messages", durations)
        self._emit("after_ack", successful, failed)

    def committed(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        """A service committed offsets (services get this method through ``report_commits``)."""
        self._emit("after_commit", duration, partitions)

    def longest_call(self) -> float:
        """Seconds the oldest handler call in progress has been running (0 when none is).

        handle_message calls count only while `timing` is on.
        """
        if not self._calls:
            return 0.0
        return time.monotonic() - min(self._calls.values())

    # -- called by Pipeline ------------------------------------------------

    def hub_blocked(self, stage: str, handler: str) -> None:
        """The watchdog saw `stage` block the hub in `handler` (``Class.method (file:line)``)."""
        self._emit("after_hub_blocked", stage, handler)

    def pipeline_started(self, pipeline: Any) -> None:
        self._emit("after_pipeline_start", pipeline)

    def pipeline_stopping(self, pipeline: Any) -> None:
        self._emit("before_pipeline_stop", pipeline)

    def pipeline_stopped(self, pipeline: Any, clean: bool) -> None:
        self._emit("after_pipeline_stop", pipeline, clean)

    def _emit(self, name: str, *args: Any) -> None:
        for hook, method in self._methods[name]:
            try:
                method(*args)
            except Exception:
                key = (id(hook), name)
                if key not in self._failed:
                    self._failed.add(key)
                    logger.exception("hook %r raised in %s; the pipeline goes on (not logged again)", hook, name)
