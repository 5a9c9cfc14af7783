"""Builds the greenlets and queues of a started pipeline, watches them, and stops them in order.

    producers -> Router -> processors -> batcher inboxes -> batchers -> batch processors

Shutdown goes front to back so nothing is dropped: the producers stop
receiving, each later stage is sent STOP behind the last message it will get,
batchers flush their partial batches, and only once every message was
acknowledged are the producers' services (a Kafka consumer group, say) stopped,
so their final commits cover everything. The whole stop fits in one budget:
the stages get most of it, the services at least SERVICES_SHARE of it.

Supervision: a stage greenlet that dies, or a service that reports it cannot
work any more, calls `on_failure(reason)` at once; the pipeline then stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Full, Queue

from ..message import Message
from ..producer import ProducerClass, Service
from .callbacks import Callbacks
from .flow import Credits, RateLimiter
from .stages import STOP, BatcherInbox, BatcherStage, BatchProcessorStage, ProcessorStage, ProducerStage, Router
from .stages.base import Stage

__all__ = ["Topology"]

logger = logging.getLogger(__name__)

SERVICES_SHARE = 0.25
"""The part of the stop budget kept for stopping the services (final commits, leaving the group),
however long the stages take to drain."""

KILL_WAIT_MIN = 0.05  # seconds a killed greenlet is given to unwind when the budget is spent
STOP_POLL = 0.1  # seconds between checks for an abort while a batcher's inbox is full
START_FAILURE_STOP = 5.0  # seconds for the services started before another failed to start


class _Budget:
    """What is left of a stop's time, in seconds."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self, reserve: float = 0.0) -> float:
        return max(self.deadline - reserve - time.monotonic(), 0.0)


class Topology:
    def __init__(
        self,
        callbacks: Callbacks,
        options: dict[str, Any],
        services: Sequence[Service],
        on_failure: Callable[[str], None],
    ):
        self.name = options["name"]
        self.services = services
        self.on_failure = on_failure
        self.draining = Event()
        self.aborted = Event()
        self.stopped = Event()
        self.callbacks = callbacks
        processor = options["processors"]["default"]
        self.credits = Credits(processor["concurrency"] * processor["max_demand"])
        self.router = Router(processor["concurrency"], processor["partition_by"], callbacks.log)
        self.batcher_stages, self.batch_processors, batcher_inboxes = self._build_batchers(
            options["batchers"], processor["max_demand"]
        )
        self.processors = [
            ProcessorStage(
                name=f"{self.name}.processor.{i}",
                processor="default",
                inbox=self.router.queue_for(i),
                shared=processor["partition_by"] is None,
                max_demand=processor["max_demand"],
                callbacks=self.callbacks,
                credits=self.credits,
                batchers=batcher_inboxes,
            )
            for i in range(processor["concurrency"])
        ]
        self.producers = self._build_producers(options["producer"], processor["max_demand"])

    @property
    def stages(self) -> list[Stage]:
        return [*self.producers, *self.processors, *self.batcher_stages, *self.batch_processors]

    def _build_producers(self, stage: dict[str, Any], chunk_size: int) -> list[ProducerStage]:
        module: tuple[ProducerClass, dict[str, Any]] = stage["module"]
        cls, producer_options = module
        limit = stage["rate_limiting"]
        limiter = RateLimiter(limit["allowed_messages"], limit["interval"]) if limit else None
        count = stage["concurrency"]
        # Each producer greenlet asks for at most its share of the credits: a
        # producer blocked in receive() with nothing to give holds the credits
        # it took, and must not starve the producers that have data.
        share = -(-self.credits.total // count)
        return [
            ProducerStage(
                name=f"{self.name}.producer.{i}",
                producer=cls(producer_options, index=i, count=count),
                credits=self.credits,
                max_demand=share,
                router=self.router,
                rate_limiter=limiter,
                draining=self.draining,
                chunk_size=chunk_size,
            )
            for i in range(count)
        ]

    def _build_batchers(
        self, batchers: dict[str, Any], chunk_size: int
    ) -> tuple[list[BatcherStage], list[BatchProcessorStage], dict[str, BatcherInbox]]:
        stages: list[BatcherStage] = []
        batch_processors: list[BatchProcessorStage] = []
        inboxes: dict[str, BatcherInbox] = {}
        for name, opts in batchers.items():
            inboxes[name] = BatcherInbox(opts["max_demand"] or opts["batch_size"], chunk_size)
            count = opts["concurrency"]
            outboxes: list[Queue[Any]]
            if opts["partition_by"]:
                outboxes = [Queue(maxsize=1) for _ in range(count)]
            else:
                outboxes = [Queue(maxsize=count)] * count
            stages.append(
                BatcherStage(
                    name=f"{self.name}.batcher.{name}",
                    batcher=name,
                    inbox=inboxes[name].queue,
                    batch_size=opts["batch_size"],
                    batch_timeout_ms=opts["batch_timeout"],
                    outboxes=outboxes,
                    partition_by=opts["partition_by"],
                    on_routing_error=partial(self._fail_batch, name),
                )
            )
            batch_processors.extend(
                BatchProcessorStage(f"{self.name}.batch_processor.{name}.{i}", name, outboxes[i], self.callbacks)
                for i in range(count)
            )
        return stages, batch_processors, inboxes

    def _fail_batch(self, batcher: str, messages: list[Message], reason: BaseException) -> None:
        """A batcher's partition_by raised: the batch fails without being handled."""
        text = f"a batcher's partition_by raised {reason!r}; the batch of {len(messages)} fails without being handled"
        self.callbacks.log.exception("batcher partition_by", reason, text)
        self.callbacks.finish([], [m.failed(reason) for m in messages], self.callbacks.executors.batcher(batcher))

    def start(self) -> None:
        """Start the services (each told where to report trouble first), then every stage."""
        started = []
        try:
            for service in self.services:
                supervise = getattr(service, "supervise", None)
                if supervise is not None:
                    supervise(self._service_report(service))
                self.callbacks.hooks.connect(service)
                service.start()
                started.append(service)
        except Exception:
            budget = _Budget(START_FAILURE_STOP)
            for service in reversed(started):
                _stop_service(service, budget.left())
            raise
        for stage in (*self.batch_processors, *self.batcher_stages, *self.processors, *self.producers):
            stage.start(self._stage_died)

    def _stage_died(self, stage: Stage, reason: str) -> None:
        self.on_failure(f"stage {stage.name} died: {reason}")

    def _service_report(self, service: Service) -> Callable[[str], None]:
        def report(reason: str) -> None:
            logger.error("[%s] service %r reports it cannot work any more: %s", self.name, service, reason)
            self.on_failure(f"service {type(service).__name__} failed: {reason}")

        return report

    @property
    def in_flight(self) -> int:
        """Messages the producers handed over that the processors still hold."""
        return self.credits.in_use

    def abort(self) -> None:
        """Kill every stage at once (a stop already running then goes straight to the services)."""
        self.aborted.set()
        for stage in self.stages:
            stage.cancel()

    def stop(self, timeout: float) -> bool:
        """Drain and stop everything within `timeout` seconds; True when every stage finished its
        work and every service stopped cleanly."""
        budget = _Budget(timeout)
        reserve = timeout * SERVICES_SHARE
        self.draining.set()
        for stage in self.producers:
            stage.prepare_for_draining()
        clean = self._join(self.producers, budget, reserve)
        self.router.stop_all(len(self.processors))
        clean = self._join(self.processors, budget, reserve) and clean
        for batcher in self.batcher_stages:
            self._send_stop(batcher, budget, reserve)
        clean = self._join([*self.batcher_stages, *self.batch_processors], budget, reserve) and clean
        if not self.aborted.is_set():
            # handle_failed runs for them; a Timeout there is caught and they are acknowledged anyway.
            # gevent documents `False` as "end the block silently"; its stubs only allow exceptions.
            with gevent.Timeout(max(budget.left(reserve), 0.001), False):  # type: ignore[arg-type]
                self.callbacks.release_held()
        self.callbacks.executors.close()
        self.callbacks.log.flush()
        for service in reversed(self.services):
            clean = _stop_service(service, budget.left()) and clean
        self.stopped.set()
        return clean and not self.aborted.is_set()

    def _send_stop(self, stage: BatcherStage, budget: _Budget, reserve: float) -> None:
        """Put STOP in a batcher's inbox behind its last message, unless the batcher is dead, the stop
        was aborted, or the stages' share of the budget is spent (a batcher blocked behind a stuck
        batch processor cannot take it; _join then kills it)."""
        while stage.alive and not self.aborted.is_set():
            try:
                stage.inbox.put(STOP, timeout=min(max(budget.left(reserve), 0.001), STOP_POLL))
                return
            except Full:
                if not budget.left(reserve):
                    return

    def _join(self, stages: Sequence[Stage], budget: _Budget, reserve: float) -> bool:
        """Wait for the stages to finish, until the budget less `reserve` is spent; kill the late ones.
        False when one was late, or had died before."""
        running = [(s, s.greenlet) for s in stages if s.greenlet is not None]
        done = {id(g) for g in gevent.joinall([g for _, g in running], timeout=budget.left(reserve))}
        late = [(s, g) for s, g in running if id(g) not in done]
        if late and not self.aborted.is_set():
            logger.error(
                "[%s] shutdown timeout: killing %d stage(s) still busy (%s); their messages are not acknowledged "
                "and will be delivered again",
                self.name,
                len(late),
                ", ".join(s.name for s, _ in late),
            )
        for stage, _ in late:
            stage.cancel()
        gevent.joinall([g for _, g in late], timeout=max(budget.left(reserve), KILL_WAIT_MIN))
        return not late and all(s.death is None for s in stages)


def _stop_service(service: Service, timeout: float) -> bool:
    """Stop one service within `timeout`; False when it says it could not stop cleanly, or raised.
    A service whose stop() returns nothing (None) counts as clean."""
    try:
        return service.stop(timeout) is not False
    except Exception:
        logger.exception("stopping service %r raised", service)
        return False
