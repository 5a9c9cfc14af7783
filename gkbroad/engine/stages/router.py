"""The router: picks the processor queue of each message the producer stage emits.

With a partition_by function every processor greenlet has its own queue and a
message always goes to the queue its key picks (its lane); without one, all
processors share one queue. A partition_by that raises fails that message
instead of stopping the producer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent.queue import Queue

from ...message import Message
from ..guard import reraise_stops
from ..repeated_log import RepeatedLog
from .base import STOP

__all__ = ["Router"]


class Router:
    """Picks the processor queue of each message."""

    def __init__(self, concurrency: int, partition_by: Callable[[Message], int] | None, log: RepeatedLog):
        self.partition_by = partition_by
        self.log = log
        self.queues: list[Queue[Any]] = [Queue() for _ in range(concurrency if partition_by else 1)]

    def queue_for(self, index: int) -> Queue[Any]:
        return self.queues[index if self.partition_by else 0]

    def dispatch(self, message: Message) -> None:
        if self.partition_by is None:
            self.queues[0].put(message)
            return
        try:
            index = self.partition_by(message) % len(self.queues)
        except BaseException as exc:
            reraise_stops(exc)
            self.log.exception(
                "partition_by", exc, f"partition_by raised {exc!r}; the message fails without being handled"
            )
            message.failed(exc)
            index = 0
        self.queues[index].put(message)

    def stop_all(self, processors: int) -> None:
        """One STOP per processor, behind every message already queued."""
        for index in range(processors):
            self.queue_for(index).put(STOP)
