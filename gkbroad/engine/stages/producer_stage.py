"""The producer stage: asks a producer for as many messages as there are free credits.

One greenlet per producer instance. Demand is the number of free credits (see
gkbroad.engine.flow.Credits), capped by the rate limit, so a slow pipeline makes the
producer wait instead of buffering. After an empty receive the credits are
handed back before the producer's idle() waits for data, so an idle producer
never holds demand that a busy one could use. What it receives goes to the router chunk by
chunk (see gkbroad.producer: ``receive_chunks``, or what ``receive`` returned cut into runs that
share an acknowledger), which picks the processor queue. The producer stage never acknowledges anything: the processors
and batch processors do, once a message is done (gkbroad.engine.callbacks.Callbacks.finish).

Named producer_stage so it is not confused with gkbroad/producer.py (the protocol a
producer class follows) or gkbroad/kafka/producer.py (the Kafka producer class).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from gevent.event import Event

from ...message import Message
from ...producer import ProducerProtocol
from ..flow import Credits, RateLimiter
from ..guard import reraise_stops
from .base import Stage
from .router import Router

logger = logging.getLogger(__name__)

RECEIVE_ERROR_BACKOFF = 1.0


class ProducerStage(Stage):
    def __init__(
        self,
        name: str,
        producer: ProducerProtocol,
        credits: Credits,
        router: Router,
        rate_limiter: RateLimiter | None,
        draining: Event,
        max_demand: int | None = None,
        chunk_size: int = 10,
    ):
        self.name = name
        self.producer = producer
        self.credits = credits
        self.max_demand = max_demand or credits.total
        self.router = router
        self.rate_limiter = rate_limiter
        self.draining = draining
        self.chunk_size = chunk_size  # the most messages a processor takes at once (its max_demand)
        self._receive_chunks: Callable[[int, int], list[list[Message]]] | None = getattr(
            producer, "receive_chunks", None
        )

    def run(self) -> None:
        while not self.draining.is_set():
            demand = self._demand()
            if not demand:
                continue
            chunks = self._receive(demand)
            received = sum(map(len, chunks))
            unused = demand - received
            if unused > 0:
                self.credits.give(unused)
                if self.rate_limiter:
                    self.rate_limiter.give_back(unused)
            elif unused < 0:
                logger.warning(
                    "%s: receive(%d) returned %d messages; the extra ones are processed anyway",
                    self.name,
                    demand,
                    received,
                )
                self.credits.give(unused)
            for chunk in chunks:
                self.router.dispatch(chunk)
            if not received and not self.draining.is_set():
                self._idle()

    def _demand(self) -> int:
        demand = self.credits.take(self.max_demand, self.draining)
        if demand and self.rate_limiter:
            allowed = self.rate_limiter.take(demand, self.draining)
            self.credits.give(demand - allowed)
            demand = allowed
        return demand

    def prepare_for_draining(self) -> None:
        self._call_optional("prepare_for_draining")

    def _idle(self) -> None:
        if not self._call_optional("idle"):
            self.draining.wait(RECEIVE_ERROR_BACKOFF)

    def _call_optional(self, method: str) -> bool:
        """Call a producer method the protocol makes optional; False if it raised (logged)."""
        function = getattr(self.producer, method, None)
        if function is None:
            return True
        try:
            function()
        except BaseException as exc:
            reraise_stops(exc)
            logger.exception("%s: %s raised", self.name, method)
            return False
        return True

    def _receive(self, demand: int) -> list[list[Message]]:
        """The producer's messages as chunks of at most chunk_size, none empty; nothing when it raised
        (logged, then a backoff)."""
        try:
            if self._receive_chunks is None:
                return by_acknowledger(list(self.producer.receive(demand)), self.chunk_size)
            chunks = self._receive_chunks(demand, self.chunk_size)
        except BaseException as exc:
            reraise_stops(exc)
            logger.exception("%s: receive(%d) raised; retrying in %.1fs", self.name, demand, RECEIVE_ERROR_BACKOFF)
            self.draining.wait(RECEIVE_ERROR_BACKOFF)
            return []
        size = self.chunk_size
        if all(0 < len(chunk) <= size for chunk in chunks):
            return chunks
        return [chunk[start : start + size] for chunk in chunks for start in range(0, len(chunk), size)]


def by_acknowledger(messages: list[Message], size: int) -> list[list[Message]]:
    """`messages` cut into runs of at most `size` consecutive messages that share one acknowledger
    (handler and ref)."""
    chunks: list[list[Message]] = []
    chunk: list[Message] = []
    handler: Any = None
    ref: Hashable = None
    for message in messages:
        acknowledger = message.acknowledger
        if not chunk or len(chunk) == size or acknowledger[0] is not handler or acknowledger[1] != ref:
            handler, ref = acknowledger[0], acknowledger[1]
            chunk = [message]
            chunks.append(chunk)
        else:
            chunk.append(message)
    return chunks
