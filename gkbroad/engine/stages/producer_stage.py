"""The producer stage: asks a producer for as many messages as there are free credits.

One greenlet per producer instance. Demand is the number of free credits (see
gkbroad.engine.flow.Credits), capped by the rate limit, so a slow pipeline makes the
producer wait instead of buffering. After an empty receive the credits are
handed back before the producer's idle() waits for data, so an idle producer
never holds demand that a busy one could use. What it receives goes to the router, which
picks the processor queue. The producer stage never acknowledges anything: the processors
and batch processors do, once a message is done (gkbroad.engine.callbacks.Callbacks.finish).

Named producer_stage so it is not confused with gkbroad/producer.py (the protocol a
producer class follows) or gkbroad/kafka/producer.py (the Kafka producer class).
"""

from __future__ import annotations

import logging

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
    ):
        self.name = name
        self.producer = producer
        self.credits = credits
        self.max_demand = max_demand or credits.total
        self.router = router
        self.rate_limiter = rate_limiter
        self.draining = draining

    def run(self) -> None:
        while not self.draining.is_set():
            demand = self._demand()
            if not demand:
                continue
            messages = self._receive(demand)
            unused = demand - len(messages)
            if unused > 0:
                self.credits.give(unused)
                if self.rate_limiter:
                    self.rate_limiter.give_back(unused)
            elif unused < 0:
                logger.warning(
                    "%s: receive(%d) returned %d messages; the extra ones are processed anyway",
                    self.name,
                    demand,
                    len(messages),
                )
                self.credits.give(unused)
            for message in messages:
                self.router.dispatch(message)
            if not messages and not self.draining.is_set():
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

    def _receive(self, demand: int) -> list[Message]:
        try:
            return list(self.producer.receive(demand))
        except BaseException as exc:
            reraise_stops(exc)
            logger.exception("%s: receive(%d) raised; retrying in %.1fs", self.name, demand, RECEIVE_ERROR_BACKOFF)
            self.draining.wait(RECEIVE_ERROR_BACKOFF)
            return []
