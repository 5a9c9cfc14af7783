"""What a running pipeline is doing, as plain data, and whether it is healthy.

`snapshot()` gathers, without any I/O, what the status page, the statsd
gauges and the log summary show: state, counters, records/s, stage
concurrencies, and per partition the offsets and counts its services report
through their optional ``stats()``. Only listed fields are copied out of
those stats, so no client setting (passwords, tokens) can reach a page.

`unhealthy()` applies the /healthz rules; see docs/guides/observability.md.
"""

from __future__ import annotations

import os
from typing import Any

from .counters import Counters

__all__ = ["snapshot", "unhealthy"]

# stats() field of a service -> name on the status page
_PARTITION_FIELDS = {
    "committed": "committed",
    "highwater": "end_offset",
    "lag": "lag",
    "buffered": "buffered",
    "pending": "in_flight",
    "paused": "paused",
    "epoch": "epoch",
}


def snapshot(pipeline: Any, topology: Any) -> dict[str, Any]:
    """The pipeline's state and numbers; `topology` is None before start()."""
    counters = pipeline.hooks.find(Counters)
    options = pipeline.options
    partitions = []
    for stats in _service_stats(pipeline):
        for (topic, partition), fields in sorted((stats.get("partitions") or {}).items()):
            row = {"topic": topic, "partition": partition}
            row.update({shown: fields.get(field) for field, shown in _PARTITION_FIELDS.items()})
            partitions.append(row)
    producers = []
    for stage in topology.producers if topology else ():
        owned = getattr(stage.producer, "partitions", None)
        producers.append(
            {"name": stage.name, "partitions": sorted([t, p] for t, p in owned()) if owned is not None else None}
        )
    return {
        "name": pipeline.name,
        "state": pipeline.state,
        "failure": getattr(pipeline, "failure", None),
        "pid": os.getpid(),
        "counters": {
            "handled": counters.handled,
            "failed": counters.failed,
            "batches": counters.batches,
            "hub_blocked": counters.hub_blocked,
        },
        "records_per_second": round(counters.rate(), 1),
        "in_flight": pipeline.in_flight,
        "longest_handler_call": round(pipeline.hooks.longest_call(), 3),
        "concurrency": _concurrency(options),
        "producers": producers,
        "partitions": partitions,
    }


def unhealthy(pipeline: Any) -> str | None:
    """Why the pipeline is not healthy, or None while it is."""
    failure = getattr(pipeline, "failure", None)
    if failure:
        return f"pipeline failed: {failure}"
    if pipeline.state != "running":
        return f"pipeline is {pipeline.state}"
    for stats in _service_stats(pipeline):
        if stats.get("failure"):
            return f"service failed: {stats['failure']}"
        if stats.get("session_fenced"):
            return (
                f"consumer group {stats.get('group')!r} cannot reach its group coordinator; "
                "it gave its partitions up until it rejoins"
            )
        age, limit = stats.get("last_poll_age"), stats.get("rebalance_timeout")
        if age is not None and limit is not None and age > limit:
            return (
                f"consumer group {stats.get('group')!r} has not completed a poll for {age:.0f}s "
                f"(rebalance timeout {limit:.0f}s)"
            )
    longest, limit = pipeline.hooks.longest_call(), pipeline.options["stuck_handler_timeout"]
    if longest > limit:
        return f"a handler call has been running for {longest:.0f}s (stuck_handler_timeout {limit}s)"
    return None


def _service_stats(pipeline: Any) -> list[dict[str, Any]]:
    return [service.stats() for service in pipeline.services if callable(getattr(service, "stats", None))]


def _concurrency(options: dict[str, Any]) -> dict[str, int]:
    stages = {
        "producers": options["producer"]["concurrency"],
        "processors.default": options["processors"]["default"]["concurrency"],
    }
    for name, batcher in options["batchers"].items():
        stages[f"batch_processors.{name}"] = batcher["concurrency"]
    return stages
