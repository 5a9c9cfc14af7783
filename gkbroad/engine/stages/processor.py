"""The processor stage: handle_message for each message, then ack or hand to a batcher.

With a partition_by function every processor greenlet has its own queue and a
message always goes to the queue its key picks, so one key is handled by one
greenlet, in order. Without one, all processors share one queue and whichever
is free takes the next messages.

A message being retried holds its processor greenlet, and with it every lane
routed there. When the pipeline begins to stop during a retry's backoff, that
message and everything after it in this greenlet are left unacknowledged
(delivered again later), so no lane ever has a later message acknowledged
ahead of an earlier one that was not handled.
"""

from __future__ import annotations

import logging
from typing import Any

from gevent.queue import Queue

from ...message import Message
from ..acknowledger import withdraw_messages
from ..callbacks import Callbacks
from ..flow import Credits
from ..retry import Abandoned
from .base import STOP, Stage

logger = logging.getLogger(__name__)


class ProcessorStage(Stage):
    def __init__(
        self,
        name: str,
        processor: str,
        inbox: Queue[Any],
        sharers: int,
        max_demand: int,
        callbacks: Callbacks,
        credits: Credits,
        batchers: dict[str, Queue[Any]],
    ):
        self.name = name
        self.processor = processor
        self.inbox = inbox
        self.sharers = sharers
        self.max_demand = max_demand
        self.callbacks = callbacks
        self.credits = credits
        self.batchers = batchers
        self.abandoned = 0  # messages left unacknowledged after a stop cut a retry short

    def run(self) -> None:
        stopping = False
        while not stopping:
            chunk, stopping = self._next_chunk()
            if chunk:
                if self.abandoned:
                    self.abandoned += len(chunk)
                    withdraw_messages(chunk)
                else:
                    self._process(chunk)
                self.credits.give(len(chunk))
        if self.abandoned:
            logger.warning(
                "%s: the stop ended a retry's backoff; %d message(s) from that one on were left unacknowledged "
                "and will be delivered again",
                self.name,
                self.abandoned,
            )

    def _next_chunk(self) -> tuple[list[Message], bool]:
        """The next messages to handle, taken fairly when the inbox is shared."""
        first = self.inbox.get()
        if first is STOP:
            return [], True
        chunk = [first]
        most = min(self.max_demand, 1 + len(self.inbox) // self.sharers)
        while len(chunk) < most and not self.inbox.empty():
            item = self.inbox.peek_nowait()
            if item is STOP:
                break
            chunk.append(self.inbox.get_nowait())
        return chunk, False

    def _process(self, chunk: list[Message]) -> None:
        callbacks = self.callbacks
        if callbacks.halted:
            return  # the failure policy tripped: these are neither handled nor acknowledged
        if callbacks.has_prepare:
            chunk = callbacks.prepare_messages(self.processor, callbacks.without_stale(chunk))
        successful, failed = [], []
        for index, message in enumerate(chunk):
            if not message.is_failed:
                # Checked again right before each call: a handler that blocked on an earlier
                # message of the chunk may have outlived the partition's assignment.
                if callbacks.drop_if_stale(message):
                    continue
                try:
                    handled = callbacks.handle_message(self.processor, message)
                except Abandoned:
                    self.abandoned = len(chunk) - index
                    withdraw_messages(chunk[index:])
                    break
                if handled is None:  # turned stale while waiting for a retry; already acknowledged
                    continue
                message = handled
            if message.is_failed:
                failed.append(message)
            elif message.batcher in self.batchers:
                self.batchers[message.batcher].put(message)
            elif not self.batchers and message.batcher == "default":
                successful.append(message)
            else:
                failed.append(
                    message.failed(
                        f"handle_message put the message in batcher {message.batcher!r}, which does not exist; "
                        f"configured batchers: {', '.join(sorted(self.batchers)) or 'none'}"
                    )
                )
        callbacks.finish(successful, failed, callbacks.executors.processor(self.processor))
