"""Option schemas of the pipeline and its stages: every engine option, declared once.

Each option has its default and a description here; the docs' option
reference is generated from these schemas (`docgen`), so it cannot drift from
what is enforced. Unknown keys are rejected. The Kafka producer's options live
with it, in `gkbroad.kafka.options`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema
from marshmallow import validate as mm_validate

from ..engine.executor import EXECUTORS
from .fields import (
    Callable,
    ExceptionClasses,
    FailureMode,
    NamedStages,
    NonEmptyString,
    NonNegativeInt,
    PositiveInt,
    ProducerModule,
    one_of,
    option,
)

__all__ = [
    "BatcherOptions",
    "MetricsOptions",
    "PipelineOptions",
    "ProcessorOptions",
    "ProducerStageOptions",
    "PrometheusOptions",
    "RateLimitingOptions",
    "RetryOptions",
    "RunOptions",
    "StatsdOptions",
]


class RateLimitingOptions(Schema):
    class Meta:
        unknown = RAISE

    allowed_messages = PositiveInt(
        required=True,
        **option("How many messages the producers may emit per interval, all producer greenlets together."),
    )
    interval = PositiveInt(required=True, **option("The length of the interval, in milliseconds."))


class ProducerStageOptions(Schema):
    class Meta:
        unknown = RAISE

    module = ProducerModule(
        required=True,
        **option(
            "The producer class, or a dotted path to it (`'pkg.mod:Class'`), or a pair "
            "`(class_or_path, {producer options})`."
        ),
    )
    concurrency = PositiveInt(
        load_default=1, **option("How many producer greenlets run; each is given its index and the count.")
    )
    rate_limiting = fields.Nested(
        RateLimitingOptions,
        load_default=None,
        allow_none=True,
        **option("Caps how fast messages are produced: `{'allowed_messages': N, 'interval': ms}`."),
    )


class RetryOptions(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = PositiveInt(
        required=True,
        validate=mm_validate.Range(min=2, error="must be at least 2 (1 means no retry)"),
        **option(
            "How many times handle_message is called for one message at most, the first call included (2 or more)."
        ),
    )
    backoff = NonNegativeInt(
        load_default=100, **option("Milliseconds before the second attempt; each further wait doubles, with jitter.")
    )
    max_backoff = NonNegativeInt(
        load_default=10000, **option("The longest wait between two attempts, in milliseconds.")
    )
    retry_on = ExceptionClasses(
        load_default=None,
        **option(
            "The exceptions worth another attempt (subclasses included). Default: every exception that fails "
            "the message. A handler that returns `message.failed(...)` is never retried."
        ),
    )
    mode = one_of(
        ("in_place", "topic"),
        "`in_place`: the processor waits out the backoff and calls the handler again, holding the message's "
        "lane (order kept). `topic`: the failed message is written to the Kafka producer's `retry_topic` and "
        "read back when due, while the lane goes on (order across a failure given up). See Retries.",
        load_default="in_place",
    )


class ProcessorOptions(Schema):
    class Meta:
        unknown = RAISE

    concurrency = PositiveInt(
        load_default=10,
        **option(
            "How many processor greenlets call handle_message. Blocking I/O that gevent made cooperative "
            "(patched sockets, time.sleep) overlaps across them; for calls that block in C see `executor`."
        ),
    )
    max_demand = PositiveInt(
        load_default=10,
        **option(
            "How many messages each processor greenlet may hold at once. The pipeline never has more than "
            "concurrency x max_demand messages in its processors; beyond that the producers wait."
        ),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option("A function message -> int; messages with the same result always go to the same processor."),
    )
    retry = fields.Nested(
        RetryOptions,
        load_default=None,
        allow_none=True,
        **option(
            "Retry a message whose handle_message raised, in its own lane: "
            "`{'max_attempts': N, 'backoff': ms, 'max_backoff': ms, 'retry_on': [...]}`; see Retries. Off by default."
        ),
    )
    executor = one_of(
        EXECUTORS,
        "Where handle_message and prepare_messages (and handle_failed for this stage's failures) run. "
        '`"greenlet"`: on the processor\'s greenlet. `"thread"`: in a pool of `concurrency` native threads, '
        "for handlers that block in C code gevent cannot patch (see Blocking code gevent cannot patch).",
        load_default="greenlet",
    )


class BatcherOptions(Schema):
    class Meta:
        unknown = RAISE

    batch_size = PositiveInt(load_default=100, **option("A batch is sent once it holds this many messages."))
    batch_timeout = PositiveInt(
        load_default=1000,
        **option("Milliseconds after a batch received its first message when it is sent, full or not."),
    )
    concurrency = PositiveInt(load_default=1, **option("How many batch processor greenlets call handle_batch."))
    max_demand = PositiveInt(
        load_default=None,
        allow_none=True,
        **option("How many handled messages may wait for this batcher at once (default: batch_size)."),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option(
            "A function message -> int; batches are routed to a batch processor by the result for their "
            "first message, so one key always lands on the same batch processor."
        ),
    )
    executor = one_of(
        EXECUTORS,
        'Where handle_batch (and handle_failed for this batcher\'s failures) runs. `"greenlet"`: on the batch '
        'processor\'s greenlet. `"thread"`: in a pool of `concurrency` native threads, for handlers that block '
        "in C code gevent cannot patch.",
        load_default="greenlet",
    )


class StatsdOptions(Schema):
    class Meta:
        unknown = RAISE

    host = NonEmptyString(load_default="127.0.0.1", **option("Host of the statsd server (UDP)."))
    port = PositiveInt(load_default=8125, **option("UDP port of the statsd server."))
    prefix = NonEmptyString(
        load_default="gkbroad", **option("First part of every metric name: `<prefix>.<pipeline name>.<metric>`.")
    )
    interval = PositiveInt(
        load_default=10, **option("Seconds between two reports of the gauges (in_flight, partitions, lag).")
    )


class PrometheusOptions(Schema):
    class Meta:
        unknown = RAISE

    interval = PositiveInt(
        load_default=5,
        **option(
            "Seconds between two copies of the gauges (in flight, partitions, lag, offsets) into the metrics; "
            "a scrape of /metrics also copies them first for its own process."
        ),
    )


class MetricsOptions(Schema):
    class Meta:
        unknown = RAISE

    statsd = fields.Nested(
        StatsdOptions, load_default=None, **option("Send counters, timers and gauges to statsd; see below.")
    )
    prometheus = fields.Nested(
        PrometheusOptions,
        load_default=None,
        **option("Keep Prometheus metrics, served at /metrics (needs `gkbroad[prometheus]`); see below."),
    )

    @validates_schema
    def _one_sink(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("statsd") and data.get("prometheus") is None:
            raise ValidationError("name at least one sink: statsd or prometheus (or leave metrics out)")


class PipelineOptions(Schema):
    class Meta:
        unknown = RAISE

    name = NonEmptyString(required=True, **option("Names the pipeline in logs, metrics and greenlet names."))
    producer = fields.Nested(ProducerStageOptions, required=True, **option("The producer stage; see below."))
    processors = NamedStages(
        ProcessorOptions,
        allowed_names=("default",),
        required=True,
        **option("Exactly one entry, `default`, with the processor options below."),
    )
    batchers = NamedStages(
        BatcherOptions,
        load_default=dict,
        **option("Named batchers; a handled message goes to the one its `batcher` names. Optional."),
    )
    context = fields.Raw(
        load_default=None, allow_none=True, **option("Any object; it is passed to every callback as `context`.")
    )
    shutdown_timeout = NonNegativeInt(
        load_default=30000,
        **option(
            "Milliseconds the whole stop may take: draining in-flight messages, then stopping the producer's "
            "services (for Kafka: the final commit and leaving the group), which keep at least a quarter of it."
        ),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option("Default partition_by for the processors and every batcher that sets none of its own."),
    )
    on_failure = FailureMode(
        load_default="ack",
        **option(
            'What failed messages do. `"ack"`: they are acknowledged like successful ones (for Kafka: '
            'committed) after handle_failed. A circuit breaker, `{"max_consecutive": N}` (N failures in a row) '
            'or `{"max_rate": r, "window": N}` (at least r x N of the last N messages failed), holds failures '
            "back until they can no longer trip it, and when it trips stops the pipeline as failed without "
            "acknowledging them or anything after them. See Delivery and lifecycle."
        ),
    )
    metrics = fields.Nested(
        MetricsOptions,
        load_default=None,
        allow_none=True,
        **option("Where metrics go: `{'statsd': {...}}`, `{'prometheus': {}}` or both; see Metrics. Off by default."),
    )
    tracing = fields.Boolean(
        load_default=False,
        **option(
            "Open an OpenTelemetry consumer span around every handle_message and handle_batch call, continuing "
            "the trace of a record's `traceparent` header (needs `gkbroad[otel]`); see Metrics and tracing."
        ),
    )
    stuck_handler_timeout = PositiveInt(
        load_default=300,
        **option("Seconds after which a handler call still running turns /healthz red (see Health)."),
    )
    blocking_warning_ms = NonNegativeInt(
        load_default=500,
        **option(
            "Log a WARNING naming the stage and the handler, with its stack, when a stage holds the gevent hub "
            "(no other greenlet runs) for longer than this many milliseconds; at most once a minute per handler, "
            "every time counted in metrics and /status.json. 0 turns the watchdog off."
        ),
    )


class RunOptions(Schema):
    """The ``[run]`` table of a ``gkbroad run`` configuration file: how the command runs the pipeline,
    not a pipeline option (``Pipeline(**options)`` never sees it)."""

    class Meta:
        unknown = RAISE

    processes = PositiveInt(
        load_default=1,
        **option(
            "How many worker processes run the pipeline, each one member of the consumer group "
            "(`--processes` overrides it). Above 1, a supervisor process starts and watches them; see "
            "Several processes."
        ),
    )
    max_restarts = NonNegativeInt(
        load_default=5,
        **option(
            "How often one worker may be restarted within `restart_window`; when it dies once more, the "
            "supervisor stops every worker and exits 1."
        ),
    )
    restart_window = PositiveInt(
        load_default=60000, **option("Milliseconds over which a worker's deaths are counted against `max_restarts`.")
    )
    restart_backoff = PositiveInt(
        load_default=1000,
        **option(
            "Milliseconds before a dead worker is started again; the wait doubles with each further death "
            "within `restart_window`, up to 30 s."
        ),
    )
