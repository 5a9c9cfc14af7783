"""The gkbroad side of the benchmark: the same handler function, run by a pipeline.

Every case builds the pipeline with the options a user would write (defaults
unless the case is about one), in a fresh consumer group reading from the
beginning of the topic.
"""

from __future__ import annotations

import time

import gevent
from common import Counter, emit, peak_rss_mb, wait_done
from gevent import monkey

import gkbroad
from gkbroad.kafka import ConsumerGroup, Producer, add_output

RUN_TIMEOUT = 300.0

blocking_sleep = monkey.get_original("time", "sleep")  # blocks its thread, like a C driver gevent cannot patch


class HandlerPipeline(gkbroad.Pipeline):
    def handle_message(self, processor, message, context: Counter):
        context.handle(message.data)
        return message


class CBlockingPipeline(gkbroad.Pipeline):
    """The handler blocks its thread for `c_block` seconds (class attribute, set per run) before counting.

    With executor="thread" handlers run in several native threads at once, so the count takes a real lock.
    """

    c_block = 0.0
    count_lock = monkey.get_original("_thread", "allocate_lock")()

    def handle_message(self, processor, message, context: Counter):
        context.started()
        blocking_sleep(self.c_block)
        with self.count_lock:
            context.handle(message.data)
        return message


class BatchPipeline(gkbroad.Pipeline):
    def handle_message(self, processor, message, context: Counter):
        context.started()
        return message

    def handle_batch(self, batcher, messages, batch_info, context: Counter):
        context.handled(len(messages))
        return messages


class OutputPipeline(gkbroad.Pipeline):
    """One output record per input record: same key, the input's value."""

    def handle_message(self, processor, message, context: Counter):
        context.handle(message.data)
        return add_output(message, self.output_topic, message.data.value, key=message.data.key)


def _pipeline(config: dict, counter: Counter, cls=HandlerPipeline, batchers=None, max_demand=10, **producer):
    partitions = set()

    library = config.get("client_library", "kafka-python")

    class BenchGroup(ConsumerGroup):
        client = {("bootstrap.servers" if library == "librdkafka" else "bootstrap_servers"): config["bootstrap"]}

        def handle_consumer_start(self, topic, partition, group_name):
            partitions.add(partition)
            if len(partitions) == config["partitions"]:
                emit("assigned", partitions=len(partitions))

    return cls(
        name="bench",
        producer={
            "module": (
                Producer,
                {
                    "consumer_group": BenchGroup,
                    "client_library": library,
                    "group_name": config["group"],
                    "topics": [
                        {
                            "name": config["topic"],
                            "offset_reset_policy": "earliest",
                            **(
                                {"max_buffer_records": config["max_buffer_records"]}
                                if "max_buffer_records" in config
                                else {}
                            ),
                        }
                    ],
                    "session_timeout_ms": config["session_timeout_ms"],
                    "heartbeat_interval_ms": config["heartbeat_interval_ms"],
                    **({"ordering": config["ordering"]} if "ordering" in config else {}),
                    **producer,
                    **(
                        {"fetch_strategy": {"max_wait_ms": config["fetch_max_wait_ms"]}}
                        if "fetch_max_wait_ms" in config
                        else {}
                    ),
                },
            )
        },
        processors={
            "default": {
                "concurrency": config.get("processors", 10),
                "max_demand": max_demand,
                "executor": config.get("executor", "greenlet"),
            }
        },
        batchers=batchers or {},
        context=counter,
        tracing="tracing" in config,
        metrics={"prometheus": {}} if config.get("prometheus") else None,
    )


def _install_tracer_provider(kind: str) -> None:
    """tracing "api": the API alone, whose spans do nothing (tracing on, no SDK configured);
    "sdk": the SDK with a batching processor in front of an exporter that drops the spans."""
    if kind != "sdk":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)


def until_done(config: dict) -> dict:
    """noop, io-*, latency: run until `limit` records were handled, then stop."""
    counter = Counter(config["limit"], config.get("sleep", 0.0), latency=config.get("latency", False))
    batchers = None
    cls = HandlerPipeline
    if config.get("c_block"):
        cls = type("CBlocking", (CBlockingPipeline,), {"c_block": config["c_block"]})
    if config.get("batch_size"):
        cls = BatchPipeline
        batchers = {"default": {"batch_size": config["batch_size"], "batch_timeout": config["batch_timeout"]}}
    if "tracing" in config:
        _install_tracer_provider(config["tracing"])
    pipeline = _pipeline(config, counter, cls, batchers)
    pipeline.start()
    wait_done(counter, RUN_TIMEOUT)
    clean = pipeline.stop()
    return counter.result(clean=clean)


def until_committed(config: dict) -> dict:
    """write-*: handle `limit` records, writing one output each (or none), then stop; the rate counts
    until stop() returned, that is until every record and its output was committed."""
    from kafka.admin import KafkaAdminClient, NewTopic

    counter = Counter(config["limit"])
    cls, producer = HandlerPipeline, {}
    if config["write"] != "none":
        output = f"{config['topic']}-out-{config['group']}"
        admin = KafkaAdminClient(bootstrap_servers=config["bootstrap"], client_id="gkbroad-bench")
        try:
            admin.create_topics([NewTopic(output, num_partitions=config["partitions"], replication_factor=1)])
        finally:
            admin.close()
        cls = type("Writing", (OutputPipeline,), {"output_topic": output})
        if config["write"] == "eos":
            producer = {"exactly_once": {"transactional_id": config["group"]}}
    pipeline = _pipeline(config, counter, cls, **producer)
    pipeline.start()
    wait_done(counter, RUN_TIMEOUT)
    clean = pipeline.stop()
    counter.last = time.perf_counter()  # everything was committed only now
    return counter.result(clean=clean)


def memory(config: dict) -> dict:
    """A slow handler in front of a large backlog: how much memory the process takes."""
    counter = Counter(10**9, config["sleep"])
    baseline = peak_rss_mb()
    pipeline = _pipeline(config, counter)
    pipeline.start()
    while counter.first is None:
        gevent.sleep(0.05)
    gevent.sleep(config["duration"])
    peak = peak_rss_mb()
    clean = pipeline.stop()
    return counter.result(clean=clean, peak_rss_mb=round(peak, 1), baseline_rss_mb=round(baseline, 1))


def shutdown(config: dict) -> dict:
    """Runs like a service (run(): until SIGTERM); tells the driver once
    `in_flight` records are held by the processors, so it can send SIGTERM."""
    counter = Counter(10**9, config["sleep"])
    pipeline = _pipeline(config, counter, max_demand=config["max_demand"])

    def announce():
        deadline = time.monotonic() + RUN_TIMEOUT
        while pipeline.in_flight < config["in_flight"] and time.monotonic() < deadline:
            gevent.sleep(0.01)
        emit("ready", in_flight=pipeline.in_flight)

    gevent.spawn(announce)
    clean = pipeline.run()
    return counter.result(clean=clean)


CASES = {
    "noop": until_done,
    "noop-traced-api": until_done,
    "noop-traced-sdk": until_done,
    "noop-prometheus": until_done,
    "noop-batch": until_done,
    "io-partition": until_done,
    "io-key-100": until_done,
    "io-key-400": until_done,
    "noop-rdkafka": until_done,
    "noop-buffers-rdkafka": until_done,
    "io-key-400-rdkafka": until_done,
    "c-block-greenlet": until_done,
    "c-block-thread": until_done,
    "latency": until_done,
    "write-none": until_committed,
    "write-alo": until_committed,
    "write-eos": until_committed,
    "memory": memory,
    "shutdown": shutdown,
}
