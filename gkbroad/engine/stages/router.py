"""The router: picks the processor queue of each chunk the producer stage emits.

A chunk (a list of messages sharing one acknowledger, see gkbroad.producer)
is queued as one item. With a partition_by function every processor greenlet
has its own queue, and a chunk is split by lane first: the part of each lane
goes, in order, to the queue that lane picks. A partition_by that also
defines ``split(chunk)`` (a LaneSplitter, such as the Kafka producer's) splits
a whole chunk in one call; a plain function is called once per message, and
when it raises, that message fails instead of stopping the producer. Without
a partition_by all processors share one queue, and a chunk is cut into pieces
so that idle processors share it the way they would share single messages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, runtime_checkable

from gevent.queue import Queue

from ...message import Message
from ..guard import reraise_stops
from ..repeated_log import RepeatedLog
from .base import STOP

__all__ = ["LaneSplitter", "Router"]


@runtime_checkable
class LaneSplitter(Protocol):
    """A partition_by that can split a whole chunk by lane at once.

    ``split(chunk, count)`` returns ``{queue index: the chunk's messages for
    that queue, in order}``, the index being what ``__call__`` returns for a
    message, modulo ``count`` (the number of processor queues).
    """

    def __call__(self, message: Message) -> int: ...

    def split(self, chunk: list[Message], count: int) -> dict[int, list[Message]]: ...


class Router:
    """Puts each chunk, split by lane, on the queue of the processor that handles it."""

    def __init__(self, concurrency: int, partition_by: Callable[[Message], int] | None, log: RepeatedLog):
        self.partition_by = partition_by
        self.log = log
        self.queues: list[Queue[Any]] = [Queue() for _ in range(concurrency if partition_by else 1)]
        self.sharers = concurrency
        self._split: Callable[[list[Message], int], dict[int, list[Message]]] | None = None
        if isinstance(partition_by, LaneSplitter):
            self._split = partition_by.split
        elif partition_by is not None:
            self._split = partial(_split_each, partition_by, log)

    def queue_for(self, index: int) -> Queue[Any]:
        return self.queues[index if self.partition_by else 0]

    def dispatch(self, chunk: list[Message]) -> None:
        if self._split is None:
            self._share(chunk)
            return
        queues = self.queues
        for index, part in self._split(chunk, len(queues)).items():
            queues[index].put(part)

    def _share(self, chunk: list[Message]) -> None:
        """Cut a chunk for the shared queue into one piece per processor, so that a chunk of n
        messages keeps up to n processors busy, as n single messages would."""
        queue = self.queues[0]
        size = -(-len(chunk) // self.sharers)
        if size >= len(chunk):
            queue.put(chunk)
            return
        for start in range(0, len(chunk), size):
            queue.put(chunk[start : start + size])

    def stop_all(self, processors: int) -> None:
        """One STOP per processor, behind every message already queued."""
        for index in range(processors):
            self.queue_for(index).put(STOP)


def _split_each(
    partition_by: Callable[[Message], int], log: RepeatedLog, chunk: list[Message], count: int
) -> dict[int, list[Message]]:
    """Split by calling partition_by on every message; one for which it raises fails, on queue 0."""
    parts: dict[int, list[Message]] = {}
    for message in chunk:
        try:
            index = partition_by(message) % count
        except BaseException as exc:
            reraise_stops(exc)
            log.exception("partition_by", exc, f"partition_by raised {exc!r}; the message fails without being handled")
            message.failed(exc)
            index = 0
        part = parts.get(index)
        if part is None:
            parts[index] = [message]
        else:
            part.append(message)
    return parts
