"""Pipeline: the class users subclass to write their handlers, and its lifecycle.

Construction validates every option (a bad one raises ConfigError at once) and
lets the producer prepare its services; start() spawns the greenlets and
returns; stop() drains and acknowledges everything in flight; run() is start()
plus waiting for SIGINT/SIGTERM, for scripts. A stage that dies, a service that
reports trouble, or the on_failure policy tripping marks the pipeline failed
(`failure` says why) and stops it in a greenlet of its own.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.monkey import get_original

from .config.schemas import PipelineOptions
from .config.validation import validate
from .engine.callbacks import Callbacks
from .engine.executor import StageExecutors
from .engine.failure_policy import failure_policy
from .engine.retry import retry_policy
from .engine.topology import Topology
from .errors import ConfigError, PipelineStateError
from .message import BatchInfo, Message
from .observability import build_hooks
from .observability.status import snapshot
from .observability.watchdog import BlockingWatchdog
from .producer import Service

__all__ = ["Pipeline"]

logger = logging.getLogger(__name__)

# The OS thread's, even when threading is patched.
_thread_ident: Callable[[], int] = get_original("_thread", "get_ident")


class Pipeline:
    """Subclass it, define handle_message (and handle_batch when you use batchers).

    Every callback runs in a greenlet and may block (HTTP calls, database
    writes); with many processors, many of them wait at once. Under plain
    gevent, blocking must go through gevent-aware I/O: apply
    ``gevent.monkey.patch_all()`` at the very start of the program. Code that
    blocks in C (a C database driver) needs the stage option
    ``executor="thread"``; the watchdog (``blocking_warning_ms``) names it.
    """

    def __init__(self, **options: Any):
        opts = validate(PipelineOptions, options)
        self._check_callbacks(opts)
        producer_cls, producer_options = opts["producer"]["module"]
        prepare = getattr(producer_cls, "prepare_for_start", None)
        services: list[Service] = []
        if prepare is not None:
            services, opts = prepare(producer_options, opts)
        self.options = _apply_default_partition_by(opts)
        self.services = list(services)
        self.hooks = build_hooks(self.options)
        self._topology: Topology | None = None
        self._failure: str | None = None
        self._stopper: gevent.Greenlet[[float], None] | None = None
        self._watchdog: BlockingWatchdog | None = None
        self._hub: Any = None  # the hub the pipeline's greenlets run on, set by start()
        self._stop_begun = Event()  # someone asked to stop, or the pipeline failed
        self._stop_result: AsyncResult[bool] = AsyncResult()
        self._done = Event()  # the stop finished (or start failed)

    @property
    def name(self) -> str:
        name: str = self.options["name"]
        return name

    # -- user callbacks -------------------------------------------------

    def handle_message(self, processor: str, message: Message, context: Any) -> Message:
        raise NotImplementedError(f"{type(self).__name__} must define handle_message(processor, message, context)")

    def handle_batch(self, batcher: str, messages: list[Message], batch_info: BatchInfo, context: Any) -> list[Message]:
        raise NotImplementedError(f"{type(self).__name__} must define handle_batch to use batchers")

    def handle_failed(self, messages: list[Message], context: Any) -> list[Message]:
        """Called once with each group of failed messages before they are acknowledged as failed.

        The place to send them to a dead-letter topic or log them; the default
        does nothing. What it returns is acknowledged as failed.
        """
        return messages

    def prepare_messages(self, messages: list[Message], context: Any) -> list[Message]:
        """Called with each processor's chunk before handle_message, e.g. to load data in bulk."""
        return messages

    # -- lifecycle --------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._topology is not None and not self._topology.stopped.is_set()

    @property
    def state(self) -> str:
        """One of "created", "running", "stopping", "stopped"; `failure` says whether it failed."""
        if self._topology is None:
            return "created"
        if self._topology.stopped.is_set():
            return "stopped"
        return "stopping" if self._stop_begun.is_set() else "running"

    def status(self) -> dict[str, Any]:
        """A snapshot of state, counters and partitions for status pages and metrics (gkbroad.observability.status)."""
        return snapshot(self, self._topology)

    @property
    def in_flight(self) -> int:
        """Messages currently held by the processors (bounded by concurrency x max_demand)."""
        return self._topology.in_flight if self._topology else 0

    @property
    def stage_greenlets(self) -> dict[str, gevent.Greenlet[..., Any]]:
        """{stage name ("<pipeline>.processor.0", ...): its greenlet} once started, empty before.

        Read-only, for supervision tools and tests that need to watch (or, in a
        test, kill) one stage; a pipeline is driven through start/stop only.
        """
        if self._topology is None:
            return {}
        return {stage.name: stage.greenlet for stage in self._topology.stages if stage.greenlet is not None}

    def start(self) -> Pipeline:
        if self._topology is not None:
            raise PipelineStateError(f"pipeline {self.name!r} was already started; build a new one to run again")
        self._hub = gevent.get_hub()
        executors = StageExecutors(self.options)
        callbacks = Callbacks(
            self,
            self.options["context"],
            has_prepare=self._overrides("prepare_messages"),
            policy=failure_policy(self.options["on_failure"]),
            on_trip=self._fail,
            executors=executors,
            retry=retry_policy(self.options["processors"]["default"]["retry"]),
            stopping=self._stop_begun,
        )
        self._topology = Topology(callbacks, self.options, self.services, self._fail)
        try:
            self._topology.start()
        except BaseException:
            # start() already stopped the services it had started; nothing runs.
            executors.close()
            self._topology.stopped.set()
            self._stop_result.set(False)
            self._stop_begun.set()
            self._done.set()
            raise
        if self.options["blocking_warning_ms"]:
            self._watchdog = BlockingWatchdog(self.name, self.options["blocking_warning_ms"], self.hooks.hub_blocked)
            self._watchdog.start()
        self.hooks.pipeline_started(self)
        logger.info("[%s] started", self.name)
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop receiving, process and acknowledge everything in flight, stop the producer's services.

        The whole stop takes at most `timeout` seconds (default: the shutdown_timeout option).
        Returns True when everything drained and the services stopped cleanly (for Kafka: every
        acknowledged offset committed) and the pipeline had not failed. A second call waits for the
        first to finish and returns its result.

        Called from one of the pipeline's own greenlets (a handler), it begins the stop and returns
        False at once: that greenlet is part of what the stop waits for. The stop then completes in
        its own greenlet, and run() returns when it is done. Called from another native thread (a
        handler running with executor="thread", say), it hands the stop to the pipeline's hub and
        returns False at once too.
        """
        self._require_started()
        if self._in_executor_thread():
            self._hub.loop.run_callback_threadsafe(self._begin_stop, timeout)
            return False
        self._begin_stop(timeout)
        if self._in_own_greenlet():
            return False
        return self._stop_result.get() is True

    def join(self, timeout: float | None = None) -> bool:
        """Block until the pipeline has stopped; False if `timeout` passed first.

        From one of the pipeline's own greenlets (a handler), which the stop waits for, it begins
        the stop and returns False at once instead of waiting for itself."""
        self._require_started()
        if self._in_executor_thread():
            self._hub.loop.run_callback_threadsafe(self._begin_stop, None)
            return False
        if self._in_own_greenlet():
            self._begin_stop(None)
            return False
        return self._done.wait(timeout)

    def run(self) -> bool:
        """start(), wait for SIGINT or SIGTERM (or a stop or failure from elsewhere), then stop.

        Returns True only when the stop was clean and the pipeline did not fail. A second signal
        during the stop aborts the drain (the stages are killed; what they held is delivered
        again) but still stops the services, so what was acknowledged is committed.
        """
        self.start()
        signals: list[int] = []
        arrived = Event()

        def on_signal(signum: int) -> None:
            signals.append(signum)
            name = signal.Signals(signum).name
            if len(signals) == 1:
                logger.info("[%s] %s received: stopping (a second signal aborts the drain)", self.name, name)
            elif len(signals) == 2 and not self._done.is_set():
                logger.warning(
                    "[%s] second signal (%s): aborting the drain; messages in flight will be delivered again, "
                    "what was acknowledged is still committed",
                    self.name,
                    name,
                )
            arrived.set()

        handlers = [gevent.signal_handler(sig, on_signal, sig) for sig in (signal.SIGINT, signal.SIGTERM)]
        try:
            gevent.wait([arrived, self._stop_begun], count=1)
            self._begin_stop(None)
            while not self._done.is_set() and len(signals) < 2:
                arrived.clear()
                gevent.wait([arrived, self._done], count=1)
            if not self._done.is_set():
                self._require_started().abort()
            return self._stop_result.get() is True
        finally:
            for handler in handlers:
                handler.cancel()

    def resume_partition(self, topic: str, partition: int) -> bool:
        """End a pause a handler began with ``raise PausePartition(...)`` on ``(topic, partition)``
        now, before its time is up (or one without a time); True when one was paused. It is asked
        of the producer's services that offer ``resume_partition`` (the Kafka consumer group)."""
        resumed = False
        for service in self.services:
            resume = getattr(service, "resume_partition", None)
            if callable(resume) and resume(topic, partition):
                resumed = True
        return resumed

    @property
    def failure(self) -> str | None:
        """Why the pipeline failed (a stage died, a service reported, the failure policy tripped); None while healthy."""
        return self._failure

    def _fail(self, reason: str) -> None:
        """Mark the pipeline failed and begin a graceful stop; the first reason is kept."""
        if self._done.is_set():
            return
        if self._failure is None:
            self._failure = reason
            logger.error("[%s] failed: %s; stopping", self.name, reason)
        self._begin_stop(None)

    def _begin_stop(self, timeout: float | None) -> None:
        if self._stop_begun.is_set():
            return
        self._stop_begun.set()
        if timeout is None:
            timeout = self.options["shutdown_timeout"] / 1000.0
        self._stopper = gevent.spawn(self._stop, timeout)
        self._stopper.name = f"{self.name}.stop"

    def _stop(self, timeout: float) -> None:
        logger.info("[%s] stopping (up to %.1fs)", self.name, timeout)
        self.hooks.pipeline_stopping(self)
        try:
            clean = self._require_started().stop(timeout)
        except BaseException as exc:
            self._stop_result.set_exception(exc)
            self._done.set()
            raise
        finally:
            if self._watchdog is not None:
                self._watchdog.stop()
        result = clean and self._failure is None
        if self._failure is not None:
            logger.error("[%s] stopped after a failure: %s", self.name, self._failure)
        else:
            logger.info("[%s] stopped%s", self.name, "" if clean else ", but not cleanly (see above)")
        self.hooks.pipeline_stopped(self, result)
        self._stop_result.set(result)
        self._done.set()

    def _in_executor_thread(self) -> bool:
        """True in a native thread other than the hub's, e.g. a handler running with executor="thread"."""
        hub_thread: int = self._hub.thread_ident
        return _thread_ident() != hub_thread

    def _in_own_greenlet(self) -> bool:
        current = gevent.getcurrent()
        if current is self._stopper:
            return True
        return any(stage.greenlet is current for stage in self._require_started().stages)

    def _require_started(self) -> Topology:
        if self._topology is None:
            raise PipelineStateError(f"pipeline {self.name!r} was not started")
        return self._topology

    def _overrides(self, method: str) -> bool:
        """Whether the subclass defines its own `method` instead of Pipeline's."""
        return getattr(type(self), method) is not getattr(Pipeline, method)

    def _check_callbacks(self, opts: dict[str, Any]) -> None:
        cls = type(self)
        if not self._overrides("handle_message"):
            raise ConfigError(f"{cls.__name__} must define handle_message(self, processor, message, context)")
        if opts["batchers"] and not self._overrides("handle_batch"):
            raise ConfigError(
                f"batchers: {cls.__name__} configures batchers ({', '.join(opts['batchers'])}) "
                "but does not define handle_batch(self, batcher, messages, batch_info, context)"
            )


def _apply_default_partition_by(opts: dict[str, Any]) -> dict[str, Any]:
    """A pipeline-level partition_by applies to every stage that sets none of its own."""
    default = opts["partition_by"]
    if default is None:
        return opts
    for stage in (*opts["processors"].values(), *opts["batchers"].values()):
        if stage["partition_by"] is None:
            stage["partition_by"] = default
    return opts
