"""Retrying a failing handle_message call: which failures, how often, how long to wait.

A processor's `retry` option turns into a RetryPolicy. Only exceptions are
retried: a handler that returns ``message.failed(...)`` decided the message
fails, and that decision is final. The retry loop itself is
Callbacks.handle_message: it calls the handler once per attempt, in the
processor greenlet that holds the message, so the lane waits for the outcome.

With ``mode = "topic"`` nothing waits here: a failed attempt is handed to the
message's acknowledger (``retry_later``; the Kafka producer writes it to its
retry topic), which delivers the message again once the backoff is over, with
``metadata["attempt"]`` counting on. The lane goes on meanwhile, so order
across a failure is given up for throughput.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from gevent.event import Event

from .backoff import JITTER, backoff_delay

__all__ = ["Abandoned", "RetryPolicy", "retry_policy"]


class Abandoned(Exception):
    """The pipeline began to stop while a message waited for its next attempt.

    The message is neither failed nor acknowledged (for Kafka: its offset is
    not committed, so it is read again), and neither is anything behind it in
    the same processor greenlet, so its lane keeps its order.
    """


class RetryPolicy:
    def __init__(
        self,
        max_attempts: int,
        backoff: int,
        max_backoff: int,
        retry_on: tuple[type[BaseException], ...] | None,
        mode: str = "in_place",
    ):
        self.max_attempts = max_attempts
        self.later = mode == "topic"  # attempts are handed to the acknowledger instead of waited for
        self.first = backoff / 1000.0
        self.limit = max(max_backoff, backoff) / 1000.0
        # Every exception that reaches the retry loop fails a message: STOP_PROCESS ones propagate before it.
        self.retry_on = retry_on or (BaseException,)

    def retries(self, raised: BaseException, attempt: int) -> bool:
        """Whether a handle_message call that raised `raised` on `attempt` (1-based) gets another one."""
        return attempt < self.max_attempts and isinstance(raised, self.retry_on)

    def later_delay(self, attempt: int) -> float:
        """Seconds until the attempt after failed `attempt` is due in the "topic" mode: the nominal
        backoff, made longer by the jitter, never shorter (the delay is a promise to the downstream)."""
        nominal = min(self.limit, self.first * 2.0 ** min(attempt - 1, 62))
        return nominal * random.uniform(1, 1 + JITTER)

    def wait(self, attempt: int, stopping: Event) -> bool:
        """Sleep the backoff after failed `attempt`; False when `stopping` was set before it ended."""
        return not stopping.wait(backoff_delay(attempt, self.first, self.limit))


def retry_policy(option: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The policy for a validated processor `retry` option; None when retries are off."""
    return None if option is None else RetryPolicy(**option)
