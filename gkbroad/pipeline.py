"""Pipeline: the class users subclass to write their handlers, and its lifecycle.

Construction validates every option (a bad one raises ConfigError at once) and
lets the producer prepare its services; start() spawns the greenlets and
returns; stop() drains and acknowledges everything in flight; run() is start()
plus waiting for SIGINT/SIGTERM, for scripts.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import gevent
from gevent.event import Event

from .errors import ConfigError, PipelineStateError
from .message import BatchInfo, Message
from .metrics import build_hooks
from .options import PipelineOptions, validate
from .status import snapshot
from .topology import Topology

__all__ = ["Pipeline"]

logger = logging.getLogger(__name__)


class Pipeline:
    """Subclass it, define handle_message (and handle_batch when you use batchers).

    Every callback runs in a greenlet and may block (HTTP calls, database
    writes); with many processors, many of them wait at once. Under plain
    gevent, blocking must go through gevent-aware I/O: apply
    ``gevent.monkey.patch_all()`` at the very start of the program.
    """

    def __init__(self, **options: Any):
        opts = validate(PipelineOptions, options)
        self._check_callbacks(opts)
        producer_cls, producer_options = opts["producer"]["module"]
        prepare = getattr(producer_cls, "prepare_for_start", None)
        services: list[Any] = []
        if prepare is not None:
            services, opts = prepare(producer_options, opts)
        self.options = _apply_default_partition_by(opts)
        self.services = list(services)
        self.hooks = build_hooks(self.options)
        self._topology: Topology | None = None
        self._stopping = False
        self._clean = False

    @property
    def name(self) -> str:
        return self.options["name"]

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
        return "stopping" if self._stopping else "running"

    def status(self) -> dict:
        """A snapshot of state, counters and partitions for status pages and metrics (gkbroad.status)."""
        return snapshot(self, self._topology)

    @property
    def in_flight(self) -> int:
        """Messages currently held by the processors (bounded by concurrency x max_demand)."""
        return self._topology.in_flight if self._topology else 0

    def start(self) -> Pipeline:
        if self._topology is not None:
            raise PipelineStateError(f"pipeline {self.name!r} was already started; build a new one to run again")
        self._topology = Topology(self, self.options, self.services)
        try:
            self._topology.start()
        except BaseException:
            # start() already stopped the services it had started; nothing runs.
            self._stopping = True
            self._topology.stopped.set()
            raise
        self.hooks.pipeline_started(self)
        logger.info("[%s] started", self.name)
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop receiving, process and acknowledge everything in flight, stop the producer's services.

        Waits at most `timeout` seconds (default: the shutdown_timeout option).
        Returns True when everything drained in time. A second call waits for
        the first to finish and returns its result.
        """
        topology = self._require_started()
        if self._stopping:
            topology.stopped.wait()
            return self._clean
        self._stopping = True
        if timeout is None:
            timeout = self.options["shutdown_timeout"] / 1000.0
        logger.info("[%s] stopping (up to %.1fs)", self.name, timeout)
        self.hooks.pipeline_stopping(self)
        self._clean = topology.stop(timeout)
        logger.info("[%s] stopped%s", self.name, "" if self._clean else " after its shutdown timeout")
        return self._clean

    def join(self, timeout: float | None = None) -> bool:
        """Block until the pipeline has stopped; False if `timeout` passed first."""
        return self._require_started().stopped.wait(timeout)

    def run(self) -> bool:
        """start(), wait for SIGINT or SIGTERM (or a stop() from elsewhere), then stop()."""
        self.start()
        signalled = Event()
        handlers = [gevent.signal_handler(sig, signalled.set) for sig in (signal.SIGINT, signal.SIGTERM)]
        try:
            gevent.wait([signalled, self._topology.stopped], count=1)
        finally:
            for handler in handlers:
                handler.cancel()
        return self.stop()

    def _require_started(self) -> Topology:
        if self._topology is None:
            raise PipelineStateError(f"pipeline {self.name!r} was not started")
        return self._topology

    def _check_callbacks(self, opts: dict) -> None:
        cls = type(self)
        if cls.handle_message is Pipeline.handle_message:
            raise ConfigError(f"{cls.__name__} must define handle_message(self, processor, message, context)")
        if opts["batchers"] and cls.handle_batch is Pipeline.handle_batch:
            raise ConfigError(
                f"batchers: {cls.__name__} configures batchers ({', '.join(opts['batchers'])}) "
                "but does not define handle_batch(self, batcher, messages, batch_info, context)"
            )


def _apply_default_partition_by(opts: dict) -> dict:
    """A pipeline-level partition_by applies to every stage that sets none of its own."""
    default = opts["partition_by"]
    if default is None:
        return opts
    for stage in (*opts["processors"].values(), *opts["batchers"].values()):
        if stage["partition_by"] is None:
            stage["partition_by"] = default
    return opts
