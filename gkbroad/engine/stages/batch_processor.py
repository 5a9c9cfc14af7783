"""The batch processor stage: handle_batch for each batch, then ack its messages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gevent.queue import Queue

from ...message import FAILED, Message
from ..callbacks import Callbacks
from .base import STOP, Stage


class BatchProcessorStage(Stage):
    def __init__(self, name: str, batcher: str, inbox: Queue[Any], callbacks: Callbacks):
        self.name = name
        self.batcher = batcher
        self.inbox = inbox
        self.callbacks = callbacks

    def run(self) -> None:
        callbacks = self.callbacks
        while True:
            item = self.inbox.get()
            if item is STOP:
                return
            if callbacks.halted:
                continue  # the failure policy tripped: neither handled nor acknowledged
            messages, info = item
            fresh = callbacks.without_stale(messages)
            if fresh is not messages:
                if not fresh:
                    continue
                messages, info = fresh, replace(info, size=len(fresh))
            handled = callbacks.handle_batch(self.batcher, messages, info)
            successful: list[Message] = []
            failed: list[Message] = []
            for message in handled:
                (failed if message.status == FAILED else successful).append(message)
            callbacks.finish(successful, failed, callbacks.executors.batcher(self.batcher))
