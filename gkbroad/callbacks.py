"""Calls into user code, so that nothing a handler does can kill a stage.

Each method calls one Pipeline callback, checks what came back, and turns an
exception or a wrong return value into failed messages with a reason that says
what was expected and what arrived. It is the only place that calls user
callbacks, so the rules live here once.
"""

from __future__ import annotations

import logging
from typing import Any

from .acknowledger import ack_messages
from .message import BatchInfo, Message

__all__ = ["Callbacks"]

logger = logging.getLogger(__name__)


class Callbacks:
    def __init__(self, pipeline: Any, context: Any):
        self.pipeline = pipeline
        self.context = context
        self.has_prepare = _overrides(pipeline, "prepare_messages")
        self.name = pipeline.name
        self.hooks = pipeline.hooks

    def prepare_messages(self, messages: list[Message]) -> list[Message]:
        """Run prepare_messages on a processor's chunk; on error every message of it fails."""
        if not self.has_prepare:
            return messages
        return self._on_list("prepare_messages", messages, messages, self.context)

    def handle_message(self, processor: str, message: Message) -> Message:
        if not self.hooks.timing:
            return self._handle_message(processor, message)
        started = self.hooks.call_started()
        try:
            return self._handle_message(processor, message)
        finally:
            self.hooks.message_done(started)

    def _handle_message(self, processor: str, message: Message) -> Message:
        try:
            result = self.pipeline.handle_message(processor, message, self.context)
        except Exception as exc:
            logger.exception("[%s] handle_message raised; the message fails", self.name)
            return message.failed(exc)
        if not isinstance(result, Message):
            reason = f"handle_message must return a Message, got {type(result).__name__}: {result!r:.80}"
            logger.error("[%s] %s", self.name, reason)
            return message.failed(reason)
        return result

    def handle_batch(self, batcher: str, messages: list[Message], info: BatchInfo) -> list[Message]:
        started = self.hooks.call_started()
        try:
            return self._on_list("handle_batch", messages, batcher, messages, info, self.context)
        finally:
            self.hooks.batch_done(batcher, len(messages), started)

    def _on_list(self, callback: str, messages: list[Message], *args: Any) -> list[Message]:
        """Call a callback that takes and returns a list of messages; any failure fails them all."""
        try:
            result = getattr(self.pipeline, callback)(*args)
        except Exception as exc:
            logger.exception("[%s] %s raised; all %d of its messages fail", self.name, callback, len(messages))
            return [m.failed(exc) for m in messages]
        problem = _not_messages(result, len(messages))
        if problem:
            reason = f"{callback} must return a list of the {len(messages)} messages it was given, {problem}"
            logger.error("[%s] %s", self.name, reason)
            return [m.failed(reason) for m in messages]
        return result

    def finish(self, successful: list[Message], failed: list[Message]) -> None:
        """handle_failed for the failed messages, then acknowledge them all."""
        if failed:
            failed = self._handle_failed(failed)
        if successful or failed:
            ack_messages(successful, failed)
            self.hooks.acked(len(successful), len(failed))

    def _handle_failed(self, failed: list[Message]) -> list[Message]:
        try:
            result = self.pipeline.handle_failed(failed, self.context)
        except Exception:
            logger.exception("[%s] handle_failed raised; acknowledging %d messages as failed", self.name, len(failed))
            return failed
        problem = _not_messages(result, len(failed))
        if problem:
            logger.error(
                "[%s] handle_failed must return a list of the %d messages it was given, %s; "
                "acknowledging the originals as failed",
                self.name,
                len(failed),
                problem,
            )
            return failed
        return result


def _not_messages(result: Any, expected: int) -> str | None:
    """Why `result` is not a list of `expected` messages, or None when it is."""
    if not isinstance(result, list):
        return f"got {type(result).__name__}"
    if len(result) != expected:
        return f"got {len(result)}"
    for item in result:
        if not isinstance(item, Message):
            return f"got an item of type {type(item).__name__}"
    return None


def _overrides(pipeline: Any, method: str) -> bool:
    from .pipeline import Pipeline

    return getattr(type(pipeline), method) is not getattr(Pipeline, method)
