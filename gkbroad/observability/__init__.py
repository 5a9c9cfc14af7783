"""What a pipeline tells the outside: hooks, counters, statsd, the log summary, status, the watchdog.

Everything here learns about the pipeline through the hook methods of
`Hooks` (see hooks.py) or through ``pipeline.status()``; the stages do not
know which sinks are installed. The hook contract is typed, one Protocol per
hook method (`AfterAck`, `AfterCommit`, ...; see hook_protocols.py), and
`Hook` is any object with at least one of them.
"""

from __future__ import annotations

from typing import Any

from .counters import Counters, total_lag
from .hook_protocols import (
    AfterAck,
    AfterCommit,
    AfterHandleBatch,
    AfterHandleMessages,
    AfterHubBlocked,
    AfterPipelineStart,
    AfterPipelineStop,
    BeforePipelineStop,
    Hook,
)
from .hooks import HOOK_METHODS, Hooks
from .log_summary import LogSummary
from .statsd_sink import StatsdSink
from .worker import worker_index

__all__ = [
    "HOOK_METHODS",
    "AfterAck",
    "AfterCommit",
    "AfterHandleBatch",
    "AfterHandleMessages",
    "AfterHubBlocked",
    "AfterPipelineStart",
    "AfterPipelineStop",
    "BeforePipelineStop",
    "Counters",
    "Hook",
    "Hooks",
    "LogSummary",
    "StatsdSink",
    "build_hooks",
    "total_lag",
]


def build_hooks(options: dict[str, Any]) -> Hooks:
    """The hooks a pipeline's validated options ask for: Counters, plus StatsdSink when configured
    (naming the worker in a worker of ``gkbroad run --processes N``)."""
    hooks = Hooks((Counters(),))
    metrics = options.get("metrics")
    if metrics:
        hooks.add(StatsdSink(options["name"], **metrics["statsd"], worker=worker_index()))
    return hooks
