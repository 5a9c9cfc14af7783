"""The batcher stage: groups handled messages into batches per batch_key.

Processors hand it what a chunk gave for this batcher as one list (see
BatcherInbox), so a message costs a list append here, not a queue round trip.

One greenlet per named batcher. A batch is sent to a batch processor when it
holds batch_size messages ("size"), when batch_timeout passed since its first
message ("timeout"), when a message in "flush" mode joins it, or when the
pipeline stops ("flush"). Batches of one key leave in the order they filled, and
with a partition_by function they always go to the same batch processor, so a
key's batches are handled in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from gevent.queue import Empty, Queue

from ...message import BatchInfo, Message
from ..guard import reraise_stops
from .base import STOP, Stage


class _Batch:
    __slots__ = ("messages", "deadline")

    def __init__(self, deadline: float):
        self.messages: list[Message] = []
        self.deadline = deadline


class BatcherInbox:
    """Where processors put the messages they handled for one batcher: each chunk's part as one item, cut
    into pieces of at most `piece` messages, in a queue of ``limit // piece`` items, so that no more than
    `limit` messages (the batcher's max_demand) wait, as the option says."""

    def __init__(self, limit: int, piece: int):
        self.piece = min(limit, piece)
        self.queue: Queue[Any] = Queue(maxsize=max(1, limit // self.piece))

    def put(self, messages: list[Message]) -> None:
        piece = self.piece
        if len(messages) <= piece:
            self.queue.put(messages)
            return
        for start in range(0, len(messages), piece):
            self.queue.put(messages[start : start + piece])


class BatcherStage(Stage):
    def __init__(
        self,
        name: str,
        batcher: str,
        inbox: Queue[Any],
        batch_size: int,
        batch_timeout_ms: int,
        outboxes: list[Queue[Any]],
        partition_by: Callable[[Message], int] | None,
        on_routing_error: Callable[[list[Message], BaseException], None],
    ):
        self.name = name
        self.batcher = batcher
        self.inbox = inbox
        self.batch_size = batch_size
        self.timeout = batch_timeout_ms / 1000.0
        self.outboxes = outboxes
        self.partition_by = partition_by
        self.on_routing_error = on_routing_error
        self.batches: dict[Hashable, _Batch] = {}

    def run(self) -> None:
        while True:
            try:
                items = [self.inbox.get(timeout=self._until_next_deadline())]
            except Empty:
                items = []
            # Whatever else is queued joins now: the deadlines are checked once per
            # round, not once per message (the inbox holds at most max_demand messages).
            items += [self.inbox.get_nowait() for _ in range(self.inbox.qsize())]
            for item in items:
                if item is STOP:
                    for key in list(self.batches):
                        self._emit(key, "flush")
                    for outbox in self.outboxes:  # one entry per batch processor, shared or not
                        outbox.put(STOP)
                    return
                self._add(item)
            self._emit_expired()

    def _until_next_deadline(self) -> float | None:
        if not self.batches:
            return None
        first = next(iter(self.batches.values()))
        return max(0.0, first.deadline - time.monotonic())

    def _add(self, messages: list[Message]) -> None:
        batches, size = self.batches, self.batch_size
        for message in messages:
            key = message.batch_key
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = _Batch(time.monotonic() + self.timeout)
            batch.messages.append(message)
            if len(batch.messages) >= size:
                self._emit(key, "size")
            elif message.batch_mode == "flush":
                self._emit(key, "flush")

    def _emit_expired(self) -> None:
        now = time.monotonic()
        # Batches are kept in creation order and share one timeout, so the
        # expired ones are always at the front.
        while self.batches:
            key, batch = next(iter(self.batches.items()))
            if batch.deadline > now:
                return
            self._emit(key, "timeout")

    def _emit(self, key: Hashable, trigger: str) -> None:
        messages = self.batches.pop(key).messages
        index = None
        if self.partition_by is not None:
            try:
                index = self.partition_by(messages[0]) % len(self.outboxes)
            except BaseException as exc:
                reraise_stops(exc)
                self.on_routing_error(messages, exc)
                return
        info = BatchInfo(batcher=self.batcher, batch_key=key, partition=index, size=len(messages), trigger=trigger)
        self.outboxes[index or 0].put((messages, info))
