"""Prometheus metrics of a pipeline (the option ``metrics = {"prometheus": {...}}``, gkbroad[prometheus]).

The hook counts what the other hooks see (messages handled and failed per
partition, retries, dead letters, partitions assigned and given up, batches,
hub blocks, handler and commit durations as histograms) and, every
``interval`` seconds and before each scrape of this process, copies the
gauges of the status snapshot: messages in flight, partitions assigned, and
per partition the committed offset, the end offset and the lag; with
exactly_once, what the transactions committed, aborted and staged. Labels are
bounded: the pipeline name, topic, partition, batcher and stage, never an
offset or a key.

The metrics live in prometheus_client's default registry, created once per
process (several pipelines share them through the ``pipeline`` label), so
``prometheus_client.make_wsgi_app()`` and the status app's ``/metrics`` both
serve them. With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts
(gunicorn ``-w N``, ``gkbroad run --processes N``), prometheus_client writes
every value to a file in that directory and a scrape of any one process adds
up the files of all of them (see docs/guides/metrics-and-tracing.md): the
counters and histograms are summed, ``in_flight``, ``partitions_assigned`` and
``transaction_staged_records`` summed over the live processes, and the per-partition gauges take the largest
value among the live processes (a partition belongs to one process at a time;
the one that gave it away sets its lag to 0).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .hook_protocols import (
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

__all__ = ["MULTIPROCESS_ENV", "PrometheusMetrics", "exposition"]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; handlers range from a dictionary update to a remote call with retries.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PARTITION_LABELS = ("pipeline", "topic", "partition")


class _Metrics:
    """Every gkbroad metric, registered once per process in the default registry."""

    def __init__(self) -> None:
        self.handled = Counter(
            "gkbroad_messages_handled", "Messages acknowledged as successful.", PARTITION_LABELS, registry=REGISTRY
        )
        self.failed = Counter(
            "gkbroad_messages_failed", "Messages acknowledged as failed.", PARTITION_LABELS, registry=REGISTRY
        )
        self.retried = Counter(
            "gkbroad_messages_retried",
            'Attempts retried: mode="in_place" after a wait, "topic" written to the retry topic.',
            ["pipeline", "mode"],
            registry=REGISTRY,
        )
        self.dead_letters = Counter(
            "gkbroad_dead_letters_written", "Records written to the dead-letter topic.", ["pipeline"], registry=REGISTRY
        )
        self.rebalanced = Counter(
            "gkbroad_partitions_rebalanced",
            'Partitions taken (reason="assigned") or given up ("revoked", "lost", "shutdown").',
            ["pipeline", "reason"],
            registry=REGISTRY,
        )
        self.transactions_committed = Counter(
            "gkbroad_transactions_committed", "Exactly-once transactions committed.", ["pipeline"], registry=REGISTRY
        )
        self.transactions_aborted = Counter(
            "gkbroad_transactions_aborted", "Exactly-once transactions aborted.", ["pipeline"], registry=REGISTRY
        )
        self.transaction_seconds = Counter(
            "gkbroad_transaction_duration_seconds",
            "Seconds spent in committed exactly-once transactions.",
            ["pipeline"],
            registry=REGISTRY,
        )
        self.staged_records = Gauge(
            "gkbroad_transaction_staged_records",
            "Records staged for the open exactly-once transactions.",
            ["pipeline"],
            multiprocess_mode="livesum",
            registry=REGISTRY,
        )
        self.batches = Counter(
            "gkbroad_batches_handled", "handle_batch calls made.", ["pipeline", "batcher"], registry=REGISTRY
        )
        self.hub_blocked = Counter(
            "gkbroad_hub_blocked",
            "Times a stage held the gevent hub past blocking_warning_ms.",
            ["pipeline", "stage"],
            registry=REGISTRY,
        )
        self.message_seconds = Histogram(
            "gkbroad_handle_message_duration_seconds",
            "Duration of handle_message calls.",
            ["pipeline"],
            buckets=DURATION_BUCKETS,
            registry=REGISTRY,
        )
        self.batch_seconds = Histogram(
            "gkbroad_handle_batch_duration_seconds",
            "Duration of handle_batch calls.",
            ["pipeline", "batcher"],
            buckets=DURATION_BUCKETS,
            registry=REGISTRY,
        )
        self.commit_seconds = Histogram(
            "gkbroad_commit_duration_seconds",
            "Duration of offset commits.",
            ["pipeline"],
            buckets=DURATION_BUCKETS,
            registry=REGISTRY,
        )
        self.in_flight = Gauge(
            "gkbroad_messages_in_flight",
            "Messages pulled and not yet acknowledged.",
            ["pipeline"],
            multiprocess_mode="livesum",
            registry=REGISTRY,
        )
        self.assigned = Gauge(
            "gkbroad_partitions_assigned",
            "Partitions assigned to the pipeline.",
            ["pipeline"],
            multiprocess_mode="livesum",
            registry=REGISTRY,
        )
        self.healthy = Gauge(
            "gkbroad_pipeline_healthy",
            "1 while /healthz would answer 200, else 0.",
            ["pipeline"],
            multiprocess_mode="livemin",
            registry=REGISTRY,
        )
        self.lag = self._partition_gauge("gkbroad_consumer_lag_messages", "Records between committed and end offset.")
        self.committed = self._partition_gauge("gkbroad_committed_offset", "The partition's committed offset.")
        self.end_offset = self._partition_gauge("gkbroad_end_offset", "The partition's end offset (high watermark).")

    @staticmethod
    def _partition_gauge(name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, PARTITION_LABELS, multiprocess_mode="livemax", registry=REGISTRY)


_metrics: _Metrics | None = None


def _shared_metrics() -> _Metrics:
    global _metrics
    if _metrics is None:
        _metrics = _Metrics()
    return _metrics


class PrometheusMetrics(
    AfterPipelineStart,
    BeforePipelineStop,
    AfterHandleMessages,
    AfterHandleBatch,
    AfterHubBlocked,
    AfterAckByPartition,
    AfterRetry,
    AfterDeadLetter,
    AfterRebalance,
    AfterCommit,
):
    """The Prometheus hook of one pipeline; the gauges are refreshed every `interval` seconds."""

    def __init__(self, pipeline_name: str, interval: float = 5.0):
        self.name = pipeline_name
        self.interval = interval
        metrics = self.metrics = _shared_metrics()
        self._acked: dict[tuple[str, str], tuple[Any, Any]] = {}  # (topic, partition) -> (handled, failed) children
        self._dead_letters = metrics.dead_letters.labels(pipeline_name)
        self._transactions: dict[str, tuple[int, int, float]] = {}  # transactional_id -> totals already counted
        self._message_seconds = metrics.message_seconds.labels(pipeline_name)
        self._commit_seconds = metrics.commit_seconds.labels(pipeline_name)
        self._partitions: set[tuple[str, str]] = set()  # (topic, partition) whose gauges this process set
        self._loop: Periodic | None = None

    def after_pipeline_start(self, pipeline: Any) -> None:
        self.refresh(pipeline.status())
        self._loop = Periodic(self.interval, lambda: self.refresh(pipeline.status()), f"{pipeline.name}.prometheus")

    def before_pipeline_stop(self, pipeline: Any) -> None:
        if self._loop is not None:
            self._loop.stop()
        self.refresh(pipeline.status())

    def after_handle_messages(self, durations: list[float]) -> None:
        observe = self._message_seconds.observe
        for duration in durations:
            observe(duration)

    def after_handle_batch(self, batcher: str, size: int, duration: float) -> None:
        self.metrics.batches.labels(self.name, batcher).inc()
        self.metrics.batch_seconds.labels(self.name, batcher).observe(duration)

    def after_hub_blocked(self, stage: str, handler: str) -> None:
        self.metrics.hub_blocked.labels(self.name, stage).inc()

    def after_ack_by_partition(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        for key, (successful, failed) in counts.items():
            children = self._acked.get(key)
            if children is None:
                children = self._acked[key] = (
                    self.metrics.handled.labels(self.name, *key),
                    self.metrics.failed.labels(self.name, *key),
                )
            if successful:
                children[0].inc(successful)
            if failed:
                children[1].inc(failed)

    def after_retry(self, mode: str, count: int) -> None:
        self.metrics.retried.labels(self.name, mode).inc(count)

    def after_dead_letter(self, count: int) -> None:
        self._dead_letters.inc(count)

    def after_rebalance(self, topic: str, partition: int, reason: str) -> None:
        self.metrics.rebalanced.labels(self.name, reason).inc()

    def after_commit(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        self._commit_seconds.observe(duration)

    def refresh(self, status: dict[str, Any]) -> None:
        """Copy the gauges of a status snapshot; a partition no longer assigned loses its series."""
        metrics, name = self.metrics, self.name
        metrics.in_flight.labels(name).set(status["in_flight"])
        metrics.assigned.labels(name).set(len(status["partitions"]))
        metrics.healthy.labels(name).set(1 if status["healthy"] else 0)
        seen = set()
        for p in status["partitions"]:
            key = (p["topic"], str(p["partition"]))
            seen.add(key)
            for gauge, value in ((metrics.lag, p["lag"]), (metrics.committed, p["committed"])):
                if value is not None:
                    gauge.labels(name, *key).set(max(value, 0))
            if p["end_offset"] is not None:
                metrics.end_offset.labels(name, *key).set(p["end_offset"])
        for key in self._partitions - seen:
            # A multiprocess file keeps a removed series' last value: the lag must read 0 there.
            metrics.lag.labels(name, *key).set(0)
            for gauge in (metrics.lag, metrics.committed, metrics.end_offset):
                gauge.remove(name, *key)
        self._partitions = seen
        self._count_transactions(status.get("transactions") or [])

    def _count_transactions(self, writers: list[dict[str, Any]]) -> None:
        """Add what each exactly-once writer committed, aborted and spent since the last snapshot (the
        snapshot holds totals since start; the counters are per process, as Prometheus expects)."""
        metrics, name = self.metrics, self.name
        staged = 0
        for writer in writers:
            before = self._transactions.get(writer["transactional_id"], (0, 0, 0.0))
            now = (writer["committed"], writer["aborted"], writer["seconds"])
            for counter, old, new in zip(
                (metrics.transactions_committed, metrics.transactions_aborted, metrics.transaction_seconds),
                before,
                now,
                strict=True,
            ):
                if new > old:
                    counter.labels(name).inc(new - old)
            self._transactions[writer["transactional_id"]] = now
            staged += writer["staged_records"]
        if writers:
            metrics.staged_records.labels(name).set(staged)


def exposition() -> bytes:
    """The text format of every metric of this process, or of all processes sharing the
    multiprocess directory when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry)
    return generate_latest(REGISTRY)
