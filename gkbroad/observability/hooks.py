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
    after_ack_by_partition(counts)          the same, as {(topic, partition): (successful, failed)}; the
                                            source is what the acknowledger's partition_of(data) answers,
                                            ("-", "-") when it has no such method
    after_retry(mode, count)                attempts retried: "in_place" (after a wait, in the processor)
                                            or "topic" (failed attempts written to the retry topic)
    after_dead_letter(count)                dead letters written to the dead-letter topic
    after_rebalance(topic, partition, reason)
                                            the consumer group took ("assigned") or gave up ("revoked",
                                            "lost", "shutdown") a partition
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

The services report what only they see (commits, dead letters, retry-topic
writes, rebalances) through optional methods named in SERVICE_REPORTS: before
a service starts, the topology calls ``connect(service)``, which hands each such
method the matching dispatcher method as its observer.
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

__all__ = ["HOOK_METHODS", "PARTITION_UNKNOWN", "SERVICE_REPORTS", "Hooks"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

HOOK_METHODS = (
    "after_pipeline_start",
    "before_pipeline_stop",
    "after_pipeline_stop",
    "after_handle_messages",
    "after_handle_batch",
    "after_ack",
    "after_ack_by_partition",
    "after_retry",
    "after_dead_letter",
    "after_rebalance",
    "after_hub_blocked",
    "after_commit",
    "around_handle_message",
    "around_handle_batch",
)

PARTITION_UNKNOWN = ("-", "-")  # the (topic, partition) label of messages whose source names none
_NO_HANDLER = object()  # no acknowledger seen yet (None may be one)

# A service's optional method (its Protocol is in gkbroad.producer) -> the Hooks method it is handed
# as its observer, before start().
SERVICE_REPORTS = {
    "report_commits": "committed",
    "report_retries": "retried",
    "report_dead_letters": "dead_lettered",
    "report_rebalances": "rebalanced",
}


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

    def acked(self, successful: list[Message], failed: list[Message]) -> None:
        """Once per acknowledged chunk or batch; also hands over the handle_message timings gathered so far.
        The per-partition counts are made only when a hook asks for them."""
        if self._durations:
            durations, self._durations = self._durations, []
            self._emit("after_handle_messages", durations)
        self._emit("after_ack", len(successful), len(failed))
        if self._methods["after_ack_by_partition"]:
            self._emit("after_ack_by_partition", count_by_partition(successful, failed))

    def retried(self, mode: str, count: int = 1) -> None:
        """Attempts retried in place (by gkbroad.engine.callbacks) or written to the retry topic (by the
        service that writes them, through ``report_retries``)."""
        self._emit("after_retry", mode, count)

    # -- handed to the services by SERVICE_REPORTS ------------------------------

    def connect(self, service: Any) -> None:
        """Hand each report method the service defines its observer (called by the topology before the
        service starts)."""
        for method, observer in SERVICE_REPORTS.items():
            report = getattr(service, method, None)
            if report is not None:
                report(getattr(self, observer))

    def committed(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        """A service committed offsets (``report_commits``)."""
        self._emit("after_commit", duration, partitions)

    def dead_lettered(self, count: int) -> None:
        """A service wrote `count` dead letters (``report_dead_letters``)."""
        self._emit("after_dead_letter", count)

    def rebalanced(self, topic: str, partition: int, reason: str) -> None:
        """A consumer group took or gave up a partition (``report_rebalances``)."""
        self._emit("after_rebalance", topic, partition, reason)

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


def count_by_partition(successful: list[Message], failed: list[Message]) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(topic, partition): (successful, failed)}``, the partition as text (it is a label), from each
    acknowledger's optional ``partition_of(data) -> (topic, partition)``; PARTITION_UNKNOWN without it.

    The messages of a chunk nearly always share one acknowledger, so its method is looked up once
    per run of messages with the same handler, and the labels are made once per partition."""
    tallies: tuple[dict[Any, int], dict[Any, int]] = ({}, {})
    for tally, messages in zip(tallies, (successful, failed), strict=True):
        handler: Any = _NO_HANDLER
        partition_of: Callable[[Any], Any] | None = None
        for message in messages:
            acknowledger = message.acknowledger
            if acknowledger[0] is not handler:
                handler = acknowledger[0]
                partition_of = getattr(handler, "partition_of", None)
            source = PARTITION_UNKNOWN if partition_of is None else partition_of(acknowledger[2])
            tally[source] = tally.get(source, 0) + 1
    ok, bad = tallies
    return {_label(source): (ok.get(source, 0), bad.get(source, 0)) for source in (ok.keys() | bad.keys())}


def _label(source: tuple[str, Any]) -> tuple[str, str]:
    return source[0], str(source[1])
