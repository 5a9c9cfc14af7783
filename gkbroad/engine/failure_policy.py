"""The `on_failure` circuit breaker: stop a pipeline whose handler fails too often.

Without it (`on_failure="ack"`) a failed message is acknowledged like a
successful one, so a handler with a bug acknowledges its way through a whole
topic. A breaker holds failed messages back instead of acknowledging them
while they could still be part of a window that trips it:

- ``{"max_consecutive": N}``: trips when N messages in a row failed. Held
  failures are released (acknowledged as failed) as soon as a message succeeds.
- ``{"max_rate": r, "window": W}``: trips when at least r x W of the last W
  messages failed. A failure is released once W more messages finished after it.

When it trips, the held failures and everything finished after them are never
acknowledged, so a Kafka consumer commits nothing past the first failure of the
tripping window, and the pipeline stops as failed. Outcomes are counted in the
order messages finish; within one group, its successes count before its failures.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..message import Message

__all__ = ["FailurePolicy", "failure_policy"]


class FailurePolicy:
    def __init__(self, max_consecutive: int | None = None, max_rate: float | None = None, window: int | None = None):
        if max_consecutive is not None:
            self.window = max_consecutive
            self.threshold = max_consecutive
            self.consecutive = True
        elif max_rate is not None and window is not None:
            self.window = window
            self.threshold = max(1, math.ceil(max_rate * window - 1e-9))
            self.consecutive = False
        else:
            raise ConfigError("a failure policy needs max_consecutive, or max_rate and window")
        self.description = (
            f"{max_consecutive} consecutive failures"
            if self.consecutive
            else f"{self.threshold} failures in the last {window} messages"
        )
        # Outcomes still in the window: None for a success, the Message for a held failure.
        self._recent: deque[Message | None] = deque()
        self._failures = 0
        self.tripped = False

    @property
    def held(self) -> int:
        return self._failures

    def admit(self, successful: int, failed: list[Message]) -> list[Message]:
        """Count `successful` successes then the `failed` messages; return the held failures that may
        now be acknowledged. After a trip (`tripped` set) nothing is returned, ever."""
        if self.tripped:
            return []
        released: list[Message] = []
        if successful:
            if self.consecutive:
                released = self._take_held()
            else:
                for _ in range(min(successful, self.window)):
                    self._push(None, released)
        for message in failed:
            self._push(message, released)
            if self._failures >= self.threshold:
                self.tripped = True
                return []
        return released

    def release_all(self) -> list[Message]:
        """Every held failure, unless the breaker tripped (at stop: nothing more can trip it)."""
        return [] if self.tripped else self._take_held()

    def _push(self, outcome: Message | None, released: list[Message]) -> None:
        self._recent.append(outcome)
        if outcome is not None:
            self._failures += 1
        if len(self._recent) > self.window:
            oldest = self._recent.popleft()
            if oldest is not None:
                self._failures -= 1
                released.append(oldest)

    def _take_held(self) -> list[Message]:
        held = [m for m in self._recent if m is not None]
        self._recent.clear()
        self._failures = 0
        return held


def failure_policy(on_failure: str | Mapping[str, Any]) -> FailurePolicy | None:
    """The breaker for a validated `on_failure` option; None for "ack" (acknowledge every failure),
    the only string the option takes."""
    if isinstance(on_failure, str):
        return None
    return FailurePolicy(**on_failure)
