"""The unit of work that flows through a pipeline, and what a batch handler is told.

A Message carries the payload (`data`, `metadata`), who must be told when it is
done (`acknowledger`), where it goes after `handle_message` (`batcher`,
`batch_key`, `batch_mode`) and whether it failed (`status`). The helper methods
change the message in place and return it, so a handler can chain them and
return the result: ``return message.put_batcher("sql").put_batch_key(key)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import GkbroadError

__all__ = ["Acknowledger", "BatchInfo", "Message", "BATCH_MODES"]

BATCH_MODES = ("bulk", "flush")
FAILED = "failed"
"""The `status` of a failed message (`is_failed`); stages that look at every message compare it directly."""
DEFAULT_BATCHER = "default"
"""The `batcher` of a message no handler put elsewhere: acknowledged by its processor when no batcher is configured."""


class Acknowledger(NamedTuple):
    """Who must hear about a message once it is done.

    `handler` is an object with ``ack(ref, successful, failed)``; messages that
    share ``(handler, ref)`` are acknowledged together in one call. `data` is
    whatever the handler needs to recognise the message (for Kafka: topic,
    partition, offset).
    """

    handler: Any
    ref: Hashable
    data: Any


@dataclass(eq=False, slots=True)
class Message:
    """One record in flight. Create it in a producer; handlers receive and return it.

    Slotted: a producer builds one per record, and slots make that and every
    attribute read cheaper. Handlers keep their own data in `data` or
    `metadata`, not in new attributes.
    """

    data: Any
    acknowledger: Acknowledger
    metadata: dict[str, Any] = field(default_factory=dict)
    batcher: str = DEFAULT_BATCHER
    batch_key: Hashable = "default"
    batch_mode: str = "bulk"
    status: str = "ok"
    failure_reason: Any = None

    @property
    def is_failed(self) -> bool:
        return self.status == FAILED

    def failed(self, reason: Any) -> Message:
        """Mark the message failed: it skips batchers, goes to handle_failed, and is
        acknowledged as failed. `reason` is kept in `failure_reason`."""
        self.status = FAILED
        self.failure_reason = reason
        return self

    def update_data(self, fn: Callable[[Any], Any]) -> Message:
        self.data = fn(self.data)
        return self

    def put_data(self, data: Any) -> Message:
        self.data = data
        return self

    def put_batcher(self, name: str) -> Message:
        self.batcher = name
        return self

    def put_batch_key(self, key: Hashable) -> Message:
        self.batch_key = key
        return self

    def put_batch_mode(self, mode: str) -> Message:
        """`"bulk"` (default) waits for a full batch or the timeout; `"flush"` sends the
        batch this message joins at once."""
        if mode not in BATCH_MODES:
            raise GkbroadError(f"batch_mode must be one of {BATCH_MODES}, got {mode!r}")
        self.batch_mode = mode
        return self


@dataclass(frozen=True)
class BatchInfo:
    """What handle_batch is told about the batch it receives.

    `partition` is the index of the batch processor the batch was routed to
    when the batcher has a partition_by function, else None. `trigger` says why
    the batch was sent: "size" (full), "timeout" (batch_timeout passed) or
    "flush" (a message asked for it, or the pipeline is stopping).
    """

    batcher: str
    batch_key: Hashable
    partition: int | None
    size: int
    trigger: str
