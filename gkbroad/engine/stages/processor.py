"""The processor stage: handle_message for each message of a chunk, then ack or hand to a batcher.

Its inbox holds chunks (lists of messages, at most max_demand each, see the
Router), and it takes them one at a time, or several small ones together up
to max_demand on a queue of its own. With a partition_by function every processor greenlet has its
own queue and a lane's chunks always go to the queue its lane picks, so one
lane is handled by one greenlet, in order. Without one, all processors share
one queue and whichever is free takes the next chunk.

A message being retried holds its processor greenlet, and with it every lane
routed there. When the pipeline begins to stop during a retry's backoff, that
message and everything after it in this greenlet are left unacknowledged
(delivered again later), so no lane ever has a later message acknowledged
ahead of an earlier one that was not handled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from gevent.queue import Queue

from ...message import DEFAULT_BATCHER, FAILED, Message
from ..acknowledger import withdraw_messages
from ..callbacks import Callbacks
from ..flow import Credits
from ..retry import Abandoned
from .base import STOP, Stage
from .batcher import BatcherInbox

logger = logging.getLogger(__name__)


class ProcessorStage(Stage):
    def __init__(
        self,
        name: str,
        processor: str,
        inbox: Queue[Any],
        shared: bool,
        max_demand: int,
        callbacks: Callbacks,
        credits: Credits,
        batchers: dict[str, BatcherInbox],
    ):
        self.name = name
        self.processor = processor
        self.inbox = inbox
        self.shared = shared  # every processor takes from this inbox (no partition_by)
        self.max_demand = max_demand
        self.callbacks = callbacks
        self.credits = credits
        self.batchers = batchers
        self.abandoned = 0  # messages left unacknowledged after a stop cut a retry short

    def run(self) -> None:
        for chunk in self._chunks():
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

    def _chunks(self) -> Iterator[list[Message]]:
        """The chunks queued for this processor, in order, until STOP. On a queue of its own, the small
        parts a chunk split by key leaves are taken together (see _with_queued)."""
        get = self.inbox.get
        while (chunk := get()) is not STOP:
            yield chunk if self.shared else self._with_queued(chunk)

    def _with_queued(self, chunk: list[Message]) -> list[Message]:
        """`chunk` and the chunks queued behind it, while they fit in max_demand messages and share its
        acknowledger handler (whose is_stale then checks them all): one round of handling and acknowledging
        instead of one per part. A shared inbox is left alone: the router already cut it into fair pieces."""
        inbox, most = self.inbox, self.max_demand
        if len(chunk) >= most or inbox.empty():
            return chunk
        handler = chunk[0].acknowledger.handler
        merged = chunk
        while not inbox.empty():
            queued = inbox.peek_nowait()
            if queued is STOP or len(merged) + len(queued) > most or queued[0].acknowledger.handler is not handler:
                break
            if merged is chunk:
                merged = list(chunk)
            merged += inbox.get_nowait()
        return merged

    def _process(self, chunk: list[Message]) -> None:
        callbacks = self.callbacks
        if callbacks.halted:
            return  # the failure policy tripped: these are neither handled nor acknowledged
        if callbacks.has_prepare:
            chunk = callbacks.prepare_messages(self.processor, callbacks.without_stale(chunk))
        processor, handle, is_stale = self.processor, callbacks.message_handler, callbacks.stale_check(chunk)
        batchers = self.batchers
        successful: list[Message] = []
        failed: list[Message] = []
        revoked: list[Message] = []
        batched: dict[str, list[Message]] = {}  # each batcher's part, handed over as one list after the loop
        for index, message in enumerate(chunk):
            if message.status != FAILED:
                # Checked right before each call: the chunk may have waited in the queue, and a
                # handler that blocked on an earlier message may have outlived the assignment.
                if is_stale is not None and is_stale(message.acknowledger.data):
                    revoked.append(message)
                    continue
                try:
                    handled = handle(processor, message)
                except Abandoned:
                    self.abandoned = len(chunk) - index
                    withdraw_messages(chunk[index:])
                    break
                if handled is None:  # turned stale while waiting for a retry; already acknowledged
                    continue
                message = handled
            if message.status == FAILED:
                failed.append(message)
            elif not batchers and message.batcher == DEFAULT_BATCHER:
                successful.append(message)
            elif message.batcher in batchers:
                batched.setdefault(message.batcher, []).append(message)
            else:
                failed.append(
                    message.failed(
                        f"handle_message put the message in batcher {message.batcher!r}, which does not exist; "
                        f"configured batchers: {', '.join(sorted(batchers)) or 'none'}"
                    )
                )
        for name, messages in batched.items():
            batchers[name].put(messages)
        if revoked:
            callbacks.revoke(revoked)
        callbacks.finish(successful, failed, callbacks.executors.processor(processor))
