"""One INFO line at an interval while a pipeline runs: records/s, counts, lag.

``gkbroad run`` installs it with ``pipeline.hooks.add(LogSummary())``; an
embedding application can do the same.
"""

from __future__ import annotations

import logging
from typing import Any

from .counters import total_lag
from .hook_protocols import AfterPipelineStart, BeforePipelineStop
from .periodic import Periodic

__all__ = ["LogSummary"]

logger = logging.getLogger(__name__)


class LogSummary(AfterPipelineStart, BeforePipelineStop):
    """One INFO line every `interval` seconds while the pipeline runs: records/s, counts, lag."""

    def __init__(self, interval: float = 30.0):
        self.interval = interval
        self._loop: Periodic | None = None

    def after_pipeline_start(self, pipeline: Any) -> None:
        self._loop = Periodic(self.interval, lambda: self.log(pipeline.status()), f"{pipeline.name}.summary")

    def before_pipeline_stop(self, pipeline: Any) -> None:
        if self._loop is not None:
            self._loop.stop()

    @staticmethod
    def log(status: dict[str, Any]) -> None:
        counters = status["counters"]
        lag = total_lag(status)
        logger.info(
            "[%s] %.1f records/s, %d handled, %d failed, lag %s over %d partition(s)",
            status["name"],
            status["records_per_second"],
            counters["handled"],
            counters["failed"],
            "unknown" if lag is None else lag,
            len(status["partitions"]),
        )
