"""What a running pipeline is doing, as plain data, and whether it is healthy.

`snapshot()` gathers, without any I/O, what the status page, the statsd
and Prometheus gauges and the log summary show: state, counters, records/s,
stage concurrencies, the samples of the last 15 minutes (gkbroad.observability.trends),
and per partition the offsets and counts its services report through their
optional ``stats()``, with the lag's trend over the last minute. Only listed fields are copied out of
those stats, so no client setting (passwords, tokens) can reach a page.

`unhealthy()` applies the /healthz rules and `readiness()` the /readyz ones;
see docs/guides/observability.md.
"""

from __future__ import annotations

import os
from typing import Any

from .counters import Counters
from .trends import Trends, lag_trend

__all__ = ["readiness", "snapshot", "unhealthy"]

# A member whose poll loop has not completed a poll for this long is not ready
# (it polls every 100 ms while it works).
POLLING_WITHIN = 10.0

# stats() field of a service -> name on the status page
_PARTITION_FIELDS = {
    "committed": "committed",
    "highwater": "end_offset",
    "lag": "lag",
    "buffered": "buffered",
    "pending": "in_flight",
    "paused": "paused",
    "pause": "pause",
    "epoch": "epoch",
}


# stats() fields of a consumer group copied to the status page
_GROUP_FIELDS = ("group", "member_state", "generation", "unstable_for", "unreachable_for", "stall_timeout")

# stats() fields of an exactly-once writer (gkbroad.kafka.transactions) copied to the status page
_TRANSACTION_FIELDS = (
    "transactional_id",
    "state",
    "committed",
    "aborted",
    "offset_only",
    "seconds",
    "last_duration",
    "staged_records",
)


def snapshot(pipeline: Any, topology: Any) -> dict[str, Any]:
    """The pipeline's state and numbers; `topology` is None before start()."""
    counters = pipeline.hooks.find(Counters)
    trends = pipeline.hooks.find(Trends)
    options = pipeline.options
    partitions = []
    for stats in _service_stats(pipeline):
        for (topic, partition), fields in sorted((stats.get("partitions") or {}).items()):
            row = {"topic": topic, "partition": partition}
            row.update({shown: fields.get(field) for field, shown in _PARTITION_FIELDS.items()})
            if trends is not None:
                row["lag_trend"] = lag_trend(row["lag"], trends.lag_before(topic, partition))
            partitions.append(row)
    producers = []
    for stage in topology.producers if topology else ():
        owned = getattr(stage.producer, "partitions", None)
        producers.append(
            {"name": stage.name, "partitions": sorted([t, p] for t, p in owned()) if owned is not None else None}
        )
    problem = unhealthy(pipeline)
    ready, why = readiness(pipeline)
    return {
        "name": pipeline.name,
        "state": pipeline.state,
        "failure": getattr(pipeline, "failure", None),
        "healthy": problem is None,
        "unhealthy_reason": problem,
        "ready": ready,
        "readiness": why,
        "groups": [
            {field: stats.get(field) for field in _GROUP_FIELDS}
            for stats in _service_stats(pipeline)
            if "member_state" in stats
        ],
        "transactions": [
            {field: stats.get(field) for field in _TRANSACTION_FIELDS}
            for stats in _service_stats(pipeline)
            if "transactional_id" in stats
        ],
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
        "trends": {"interval": trends.interval, "samples": trends.samples()} if trends is not None else None,
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
        stalled = _stalled(stats)
        if stalled:
            return stalled
    longest, limit = pipeline.hooks.longest_call(), pipeline.options["stuck_handler_timeout"]
    if longest > limit:
        return f"a handler call has been running for {longest:.0f}s (stuck_handler_timeout {limit}s)"
    return None


def _stalled(stats: dict[str, Any]) -> str | None:
    """Why a consumer group counts as stalled: no broker, or out of a stable generation, past its stall_timeout."""
    limit = stats.get("stall_timeout")
    if limit is None:
        return None
    group = stats.get("group")
    unreachable = stats.get("unreachable_for")
    if unreachable is not None and unreachable > limit:
        return (
            f"consumer group {group!r} has reached no Kafka broker for {unreachable:.0f}s (stall_timeout {limit:.0f}s)"
        )
    unstable = stats.get("unstable_for")
    if unstable is not None and unstable > limit:
        return (
            f"consumer group {group!r} has not been in a stable generation for {unstable:.0f}s "
            f"(member state {stats.get('member_state')}, stall_timeout {limit:.0f}s)"
        )
    return None


def readiness(pipeline: Any) -> tuple[bool, str]:
    """(ready, why): ready while healthy, running, and every consumer group is
    in a stable generation and polling; not while joining, rebalancing or
    stopping. A member with no partitions in a stable generation is ready, and
    the reason says why it has none."""
    problem = unhealthy(pipeline)
    if problem:
        return False, problem
    spares = []
    for stats in _service_stats(pipeline):
        state = stats.get("member_state")
        if state is None:  # not a consumer group
            continue
        group = stats.get("group")
        if stats.get("stopping"):
            return False, f"consumer group {group!r} is stopping"
        if state != "stable":
            doing = "joining" if state == "unjoined" else "rebalancing"
            return False, f"consumer group {group!r} is {doing} (member state {state})"
        age = stats.get("last_poll_age")
        if age is None or age > POLLING_WITHIN:
            return False, f"consumer group {group!r} is not polling (last poll {_seconds_ago(age)})"
        if not stats.get("partitions"):
            spares.append(
                f"consumer group {group!r} is in generation {stats.get('generation')} with no partition assigned: "
                "the group has more members than the subscribed topics have partitions (or a topic is missing), "
                "so this member stands by"
            )
    return True, "; ".join(spares) or "ready"


def _seconds_ago(age: float | None) -> str:
    return "never" if age is None else f"{age:.0f}s ago"


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
