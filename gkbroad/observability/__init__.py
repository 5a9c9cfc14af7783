"""What a pipeline tells the outside: hooks, counters, statsd, the log summary, status, the watchdog.

Everything here learns about the pipeline through the hook methods of
`Hooks` (see hooks.py) or through ``pipeline.status()``; the stages do not
know which sinks are installed.
"""

from __future__ import annotations

from .counters import Counters, total_lag
from .hooks import HOOK_METHODS, Hooks
from .log_summary import LogSummary
from .statsd_sink import StatsdSink

__all__ = ["HOOK_METHODS", "Counters", "Hooks", "LogSummary", "StatsdSink", "build_hooks", "total_lag"]


def build_hooks(options: dict) -> Hooks:
    """The hooks a pipeline's validated options ask for: Counters, plus StatsdSink when configured."""
    hooks = Hooks((Counters(),))
    metrics = options.get("metrics")
    if metrics:
        hooks.add(StatsdSink(options["name"], **metrics["statsd"]))
    return hooks
