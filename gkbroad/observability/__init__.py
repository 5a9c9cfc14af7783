"""What a pipeline tells the outside: hooks, counters, trends, statsd, Prometheus, tracing, status, the watchdog.

Everything here learns about the pipeline through the hook methods of
`Hooks` (see hooks.py) or through ``pipeline.status()``; the stages do not
know which sinks are installed. The Prometheus and tracing hooks
(prometheus.py, tracing.py) import their optional packages, so they are
imported only when a pipeline's options ask for them. The hook contract is typed, one Protocol per
hook method (`AfterAck`, `AfterCommit`, ...; see hook_protocols.py), and
`Hook` is any object with at least one of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .counters import Counters, total_lag
from .hook_protocols import (
    AfterAck,
    AfterAckByPartition,
    AfterCommit,
    AfterDeadLetter,
    AfterHandleBatch,
    AfterHandleMessages,
    AfterHubBlocked,
    AfterPipelineStart,
    AfterPipelineStop,
    AfterRebalance,
    AfterRetry,
    AroundHandleBatch,
    AroundHandleMessage,
    BeforePipelineStop,
    Hook,
)
from .hooks import HOOK_METHODS, Hooks
from .log_summary import LogSummary
from .statsd_sink import StatsdSink
from .trends import Trends
from .worker import worker_index

__all__ = [
    "HOOK_METHODS",
    "AfterAck",
    "AfterAckByPartition",
    "AfterCommit",
    "AfterDeadLetter",
    "AfterHandleBatch",
    "AfterHandleMessages",
    "AfterHubBlocked",
    "AfterPipelineStart",
    "AfterPipelineStop",
    "AfterRebalance",
    "AfterRetry",
    "AroundHandleBatch",
    "AroundHandleMessage",
    "BeforePipelineStop",
    "Counters",
    "Hook",
    "Hooks",
    "LogSummary",
    "StatsdSink",
    "Trends",
    "build_hooks",
    "total_lag",
]


def build_hooks(options: dict[str, Any]) -> Hooks:
    """The hooks a pipeline's validated options ask for: Counters and Trends, plus StatsdSink
    (naming the worker in a worker of ``gkbroad run --processes N``), PrometheusMetrics and Tracing
    when configured."""
    hooks = Hooks((Counters(), Trends()))
    metrics = options.get("metrics") or {}
    if metrics.get("statsd"):
        hooks.add(StatsdSink(options["name"], **metrics["statsd"], worker=worker_index()))
    if metrics.get("prometheus"):
        prometheus = _import_extra("prometheus", "prometheus", "metrics.prometheus")
        hooks.add(prometheus.PrometheusMetrics(options["name"], **metrics["prometheus"]))
    if options.get("tracing"):
        tracing = _import_extra("tracing", "otel", "tracing")
        hooks.add(tracing.Tracing(options["name"]))
    return hooks


def _import_extra(module: str, extra: str, option: str) -> Any:
    """gkbroad.observability.<module>, which needs the packages of gkbroad[<extra>]."""
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise ConfigError(
            f"{option}: needs the {extra!r} extra, which is not installed ({exc}); pip install 'gkbroad[{extra}]'"
        ) from exc
