"""Logging a failure that repeats: the first one in full, then a count.

A handler with a bug fails every record the same way; a traceback per record
buries everything else in the log. `RepeatedLog` logs the first occurrence of
each kind of failure with its traceback, counts the ones of the same kind after
it, and logs the count (without a traceback, with the latest text when it
differs from the first) at most once per `interval` seconds and when the
pipeline stops. An exception's kind is where it was raised and its type, not
its message: messages often carry the record (an order id), and one
traceback per order id would bury the log again. It logs through the logger it is given (the
caller's), so the records carry the caller's module name.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

MAX_KINDS = 100  # distinct failures remembered; the oldest is forgotten (after its count is logged)


class _Kind:
    __slots__ = ("text", "latest", "unlogged", "since")

    def __init__(self, text: str, since: float):
        self.text = text
        self.latest = text
        self.unlogged = 0
        self.since = since


class RepeatedLog:
    def __init__(
        self, prefix: str, logger: logging.Logger, interval: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.prefix = prefix
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._kinds: OrderedDict[Hashable, _Kind] = OrderedDict()

    def error(self, key: Hashable, text: str, exc_info: BaseException | None = None) -> None:
        """Log `text` the first time `key` is seen (with `exc_info`'s traceback), else count it."""
        now = self._clock()
        kind = self._kinds.get(key)
        if kind is None:
            self.logger.error("[%s] %s", self.prefix, text, exc_info=exc_info)
            self._kinds[key] = _Kind(text, now)
            if len(self._kinds) > MAX_KINDS:
                self._log_count(self._kinds.popitem(last=False)[1], now)
            return
        kind.unlogged += 1
        kind.latest = text
        if now - kind.since >= self.interval:
            self._log_count(kind, now)

    def exception(self, where: str, exc: BaseException, text: str) -> None:
        """error() for an exception raised in `where`: the same type there counts as the same kind."""
        self.error((where, type(exc)), text, exc)

    def flush(self) -> None:
        """Log the counts not logged yet (at stop)."""
        now = self._clock()
        for kind in self._kinds.values():
            self._log_count(kind, now)

    def _log_count(self, kind: _Kind, now: float) -> None:
        if kind.unlogged and kind.latest == kind.text:
            self.logger.error(
                "[%s] the same failure again %d times in the last %.0fs: %s",
                self.prefix,
                kind.unlogged,
                now - kind.since,
                kind.text,
            )
        elif kind.unlogged:
            self.logger.error(
                "[%s] %d more failures of the same kind (same place, same exception type) in the last %.0fs; "
                "the latest: %s",
                self.prefix,
                kind.unlogged,
                now - kind.since,
                kind.latest,
            )
        kind.unlogged = 0
        kind.text = kind.latest
        kind.since = now
