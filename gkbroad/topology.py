"""Builds the greenlets and queues of a started pipeline, and stops them in order.

    producers -> Router -> processors -> batcher inboxes -> batchers -> batch processors

Shutdown goes front to back so nothing is dropped: the producers stop
receiving, each later stage is sent STOP behind the last message it will get,
batchers flush their partial batches, and only once every message was
acknowledged are the producers' services (a Kafka consumer group, say) stopped,
so their final commits cover everything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Full, Queue

from .callbacks import Callbacks
from .flow import Credits, RateLimiter
from .stages import STOP, BatcherStage, BatchProcessorStage, ProcessorStage, ProducerStage, Router

__all__ = ["Topology"]

logger = logging.getLogger(__name__)


class Topology:
    def __init__(self, pipeline: Any, options: dict, services: list[Any]):
        self.name = options["name"]
        self.services = services
        self.draining = Event()
        self.stopped = Event()
        self.callbacks = Callbacks(pipeline, options["context"])
        processor = options["processors"]["default"]
        self.credits = Credits(processor["concurrency"] * processor["max_demand"])
        self.router = Router(processor["concurrency"], processor["partition_by"])
        self.batcher_stages, self.batch_processors, batcher_inboxes = self._build_batchers(options["batchers"])
        self.processors = [
            ProcessorStage(
                name=f"{self.name}.processor.{i}",
                processor="default",
                inbox=self.router.queue_for(i),
                sharers=1 if processor["partition_by"] else processor["concurrency"],
                max_demand=processor["max_demand"],
                callbacks=self.callbacks,
                credits=self.credits,
                batchers=batcher_inboxes,
            )
            for i in range(processor["concurrency"])
        ]
        self.producers = self._build_producers(options["producer"])

    def _build_producers(self, stage: dict) -> list[ProducerStage]:
        cls, producer_options = stage["module"]
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
            )
            for i in range(count)
        ]

    def _build_batchers(self, batchers: dict) -> tuple[list[BatcherStage], list[BatchProcessorStage], dict]:
        stages, batch_processors, inboxes = [], [], {}
        for name, opts in batchers.items():
            inboxes[name] = Queue(maxsize=opts["max_demand"] or opts["batch_size"])
            count = opts["concurrency"]
            if opts["partition_by"]:
                outboxes = [Queue(maxsize=1) for _ in range(count)]
            else:
                outboxes = [Queue(maxsize=count)] * count
            stages.append(
                BatcherStage(
                    name=f"{self.name}.batcher.{name}",
                    batcher=name,
                    inbox=inboxes[name],
                    batch_size=opts["batch_size"],
                    batch_timeout_ms=opts["batch_timeout"],
                    outboxes=outboxes,
                    partition_by=opts["partition_by"],
                    on_routing_error=self._fail_batch,
                )
            )
            batch_processors.extend(
                BatchProcessorStage(f"{self.name}.batch_processor.{name}.{i}", name, outboxes[i], self.callbacks)
                for i in range(count)
            )
        return stages, batch_processors, inboxes

    def _fail_batch(self, messages: list, reason: Exception) -> None:
        self.callbacks.finish([], [m.failed(reason) for m in messages])

    def start(self) -> None:
        started = []
        try:
            for service in self.services:
                service.start()
                started.append(service)
        except Exception:
            for service in reversed(started):
                _stop_service(service, 5.0)
            raise
        for stage in (*self.batch_processors, *self.batcher_stages, *self.processors, *self.producers):
            stage.start()

    @property
    def in_flight(self) -> int:
        """Messages the producers handed over that the processors still hold."""
        return self.credits.in_use

    def stop(self, timeout: float) -> bool:
        """Drain and stop everything; True when every stage finished within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self.draining.set()
        for stage in self.producers:
            stage.prepare_for_draining()
        clean = self._join([s.greenlet for s in self.producers], deadline)
        self.router.stop_all(len(self.processors))
        clean = self._join([s.greenlet for s in self.processors], deadline) and clean
        for stage in self.batcher_stages:
            # A batcher blocked behind a stuck batch processor cannot take it; _join kills it.
            with contextlib.suppress(Full):
                stage.inbox.put(STOP, timeout=max(deadline - time.monotonic(), 0.001))
        clean = self._join([s.greenlet for s in (*self.batcher_stages, *self.batch_processors)], deadline) and clean
        for service in reversed(self.services):
            _stop_service(service, max(deadline - time.monotonic(), 1.0))
        self.stopped.set()
        return clean

    def _join(self, greenlets: list, deadline: float) -> bool:
        greenlets = [g for g in greenlets if g is not None]
        done = gevent.joinall(greenlets, timeout=max(deadline - time.monotonic(), 0))
        late = [g for g in greenlets if g not in done]
        if late:
            logger.error(
                "[%s] shutdown timeout: killing %d stage(s) still busy (%s); their messages are not acknowledged "
                "and will be delivered again",
                self.name,
                len(late),
                ", ".join(g.name for g in late),
            )
            gevent.killall(late, timeout=1.0)
        return not late


def _stop_service(service: Any, timeout: float) -> None:
    try:
        service.stop(timeout)
    except Exception:
        logger.exception("stopping service %r raised", service)
