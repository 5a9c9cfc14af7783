"""How the consumer group's modules write log lines: one prefix, one format
for partition lists."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["GroupLog", "describe"]


class GroupLog(logging.LoggerAdapter[logging.Logger]):
    """A module's logger whose lines start with ``group <name>:``.

    Arguments stay lazy: the prefix is added to the format string only.
    """

    def __init__(self, logger: logging.Logger, group_name: str):
        super().__init__(logger, {"group": group_name})
        self._prefix = f"group {group_name}: "

    def process(self, msg: Any, kwargs: Any) -> tuple[str, Any]:
        return f"{self._prefix}{msg}", kwargs


def describe(partitions: Iterable[Any] | Mapping[Any, int]) -> str:
    """Short text for logs: 'topic:partition[@offset], ...'."""
    if isinstance(partitions, Mapping):
        return ", ".join(f"{tp.topic}:{tp.partition}@{offset}" for tp, offset in sorted(partitions.items()))
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(partitions))
