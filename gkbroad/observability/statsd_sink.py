"""Counters, timers and gauges sent to statsd.

Installed by the pipeline option ``metrics = {"statsd": {...}}``. In a worker
of ``gkbroad run --processes N`` every name carries the worker's index
(``<prefix>.<pipeline>.worker.<index>.``), so that the workers' series can be
told apart and summed with one wildcard. The sink adds
up counts and keeps a bounded sample of timings in memory, and one greenlet
sends them every second (the gauges every ``interval`` seconds), so the
handling greenlets never wait on a socket and the cost per message is an
addition.
"""

from __future__ import annotations

import random
import re
from typing import Any

import statsd

from .hook_protocols import (
    AfterAck,
    AfterAckByPartition,
    AfterCommit,
    AfterDeadLetter,
    AfterHandleBatch,
    AfterHandleMessages,
    AfterHubBlocked,
    AfterPipelineStart,
    AfterRebalance,
    AfterRetry,
    BeforePipelineStop,
)
from .periodic import Periodic

__all__ = ["StatsdSink"]


class StatsdSink(
    AfterPipelineStart,
    BeforePipelineStop,
    AfterHandleMessages,
    AfterHandleBatch,
    AfterHubBlocked,
    AfterAck,
    AfterAckByPartition,
    AfterRetry,
    AfterDeadLetter,
    AfterRebalance,
    AfterCommit,
):
    """Counters, timers and gauges to statsd, every name under ``<prefix>.<pipeline name>.``
    (``<prefix>.<pipeline name>.worker.<worker>.`` when `worker` is given)."""

    FLUSH_INTERVAL = 1.0
    TIMER_SAMPLES = 100  # timings sent per timer per flush, a uniform sample of those seen

    def __init__(self, pipeline_name: str, host: str, port: int, prefix: str, interval: int, worker: int | None = None):
        self.host, self.port = host, port
        self.prefix = f"{prefix}.{_metric_part(pipeline_name)}" + ("" if worker is None else f".worker.{worker}")
        self.interval = interval
        self.client: statsd.StatsClient | None = None
        self._counts = {"messages.handled": 0, "messages.failed": 0, "batches.handled": 0, "hub.blocked": 0}
        self._timers = {name: _Sample(self.TIMER_SAMPLES) for name in ("handle_message", "handle_batch", "commit")}
        self._loops: list[Periodic] = []

    def after_pipeline_start(self, pipeline: Any) -> None:
        self.client = statsd.StatsClient(self.host, self.port, prefix=self.prefix)
        self._loops = [
            Periodic(self.FLUSH_INTERVAL, self.flush, f"{pipeline.name}.statsd"),
            Periodic(self.interval, lambda: self.send_gauges(pipeline.status()), f"{pipeline.name}.statsd-gauges"),
        ]

    def before_pipeline_stop(self, pipeline: Any) -> None:
        for loop in self._loops:
            loop.stop()
        if self.client is not None:
            self.send_gauges(pipeline.status())
            self.flush()

    def after_handle_messages(self, durations: list[float]) -> None:
        sample = self._timers["handle_message"]
        for duration in durations:
            sample.add(duration)

    def after_handle_batch(self, batcher: str, size: int, duration: float) -> None:
        self._counts["batches.handled"] += 1
        self._timers["handle_batch"].add(duration)

    def after_hub_blocked(self, stage: str, handler: str) -> None:
        self._counts["hub.blocked"] += 1

    def after_ack(self, successful: int, failed: int) -> None:
        self._counts["messages.handled"] += successful
        self._counts["messages.failed"] += failed

    def after_ack_by_partition(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        for (topic, partition), (successful, failed) in counts.items():
            prefix = f"partition.{_metric_part(topic)}.{partition}"
            self._add(f"{prefix}.handled", successful)
            self._add(f"{prefix}.failed", failed)

    def after_retry(self, mode: str, count: int) -> None:
        self._add(f"retries.{mode}", count)

    def after_dead_letter(self, count: int) -> None:
        self._add("dead_letters.written", count)

    def after_rebalance(self, topic: str, partition: int, reason: str) -> None:
        self._add(f"rebalance.{reason}", 1)

    def after_commit(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        self._timers["commit"].add(duration)

    def _add(self, name: str, count: int) -> None:
        self._counts[name] = self._counts.get(name, 0) + count

    def flush(self) -> None:
        """Send the counts and timings gathered since the last flush (nothing before the pipeline started)."""
        client = self.client
        if client is None:
            return
        counts = {name: count for name, count in self._counts.items() if count}
        self._counts = dict.fromkeys(self._counts, 0)
        timings = {name: sample.take() for name, sample in self._timers.items()}
        with client.pipeline() as pipe:
            for name, count in counts.items():
                pipe.incr(name, count)
            for name, values in timings.items():
                for seconds in values:
                    pipe.timing(name, seconds * 1000.0)

    def send_gauges(self, status: dict[str, Any]) -> None:
        """in_flight, partitions.assigned and lag.<topic>.<partition> for every partition with a known lag
        (nothing before the pipeline started); with exactly_once, transactions.committed,
        transactions.aborted (totals since start), transactions.seconds (time spent in committed ones)
        and transactions.staged_records."""
        client = self.client
        if client is None:
            return
        with client.pipeline() as pipe:
            pipe.gauge("in_flight", status["in_flight"])
            pipe.gauge("partitions.assigned", len(status["partitions"]))
            for p in status["partitions"]:
                if p["lag"] is not None:
                    pipe.gauge(f"lag.{_metric_part(p['topic'])}.{p['partition']}", max(p["lag"], 0))
            for writer in status.get("transactions") or ():
                for field in ("committed", "aborted", "seconds", "staged_records"):
                    pipe.gauge(f"transactions.{field}", writer[field])


class _Sample:
    """A uniform random sample of at most `size` of the values added since the last take() (reservoir sampling)."""

    def __init__(self, size: int):
        self.size = size
        self.seen = 0
        self.values: list[float] = []

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < self.size:
                self.values[slot] = value

    def take(self) -> list[float]:
        values, self.values, self.seen = self.values, [], 0
        return values


def _metric_part(text: str) -> str:
    """`text` made safe inside a statsd name (the line protocol reserves ':', '|' and '@')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
