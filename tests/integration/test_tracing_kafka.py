"""OpenTelemetry tracing against the real broker, with the SDK's in-memory span exporter.

Records produced with a ``traceparent`` header yield consumer spans whose parent is the producer's
span; a handler's own span is a child of its message's span, on the stage's greenlet and in
``executor="thread"``; a batch span links to its messages' spans; and a failed record's dead
letter carries the producer's ``traceparent`` on.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import gkbroad
from gkbroad.kafka import Producer
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until
from tests.helpers.tracing_support import producer_headers, span_exporter
from tests.integration.test_dead_letters_and_retries_kafka import produce_records, read_all

RECORDS = 12
POISON = 5  # the offset of the record that fails


class TracedWork(gkbroad.Pipeline):
    """Opens a span of its own in each handler call, as an instrumented client would."""

    def handle_message(self, processor, message, context):
        with trace.get_tracer("tests.handler").start_as_current_span("handler work"):
            if message.data.offset == POISON:
                raise ValueError("poison")
        return message

    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


@pytest.mark.parametrize("executor", ["greenlet", "thread"])
def test_a_trace_crosses_kafka_into_the_handler_and_on_to_the_dead_letter(cluster, executor, client_library):
    exporter = span_exporter()
    topic, dead = cluster.topic(1, prefix="otel"), cluster.topic(1, prefix="otel-dead")
    group = cluster.group_id("otel")
    sent = [producer_headers(f"send {i}") for i in range(RECORDS)]
    produce_records(cluster.bootstrap_servers, topic, [(0, b"k%d" % i, b"v%d" % i, h) for i, (_, h) in enumerate(sent)])
    pipeline = TracedWork(
        name=f"otel-{executor}",
        producer={
            "module": (
                Producer,
                producer_options(
                    cluster.bootstrap_servers,
                    group,
                    [topic],
                    dead_letter={"topic": dead},
                    client_library=client_library,
                ),
            )
        },
        processors={"default": {"concurrency": 2, "executor": executor}},
        batchers={"default": {"batch_size": 4, "batch_timeout": 100, "executor": executor}},
        tracing=True,
    )
    pipeline.start()
    try:
        wait_until(lambda: cluster.committed(group, topic) == {0: RECORDS}, 60, "every offset committed", interval=0.2)
    finally:
        assert pipeline.stop() is True
    spans = exporter.get_finished_spans()

    consumers = {s.attributes["messaging.kafka.offset"]: s for s in spans if s.name == f"process {topic}"}
    assert sorted(consumers) == list(range(RECORDS))
    for offset, span in consumers.items():
        producer = sent[offset][0]
        assert span.kind is SpanKind.CONSUMER
        assert (span.context.trace_id, span.parent.span_id) == (producer.trace_id, producer.span_id)
        assert span.attributes["messaging.system"] == "kafka"
        assert span.attributes["messaging.destination.name"] == topic
        assert span.attributes["messaging.destination.partition.id"] == "0"
        assert span.attributes["messaging.consumer.group.name"] == group
        assert span.attributes["messaging.operation.type"] == "process"
    assert consumers[POISON].status.status_code is StatusCode.ERROR
    assert [e.name for e in consumers[POISON].events] == ["exception"]

    handler_spans = [s for s in spans if s.name == "handler work"]
    assert len(handler_spans) == RECORDS
    by_span_id = {s.context.span_id: s for s in consumers.values()}
    assert all(s.parent is not None and s.parent.span_id in by_span_id for s in handler_spans), (
        "a handler's span is not a child of its message's span"
    )

    batches = [s for s in spans if s.name == "process default"]
    linked = {link.context.span_id for s in batches for link in s.links}
    assert linked == {s.context.span_id for offset, s in consumers.items() if offset != POISON}
    assert sum(s.attributes["messaging.batch.message_count"] for s in batches) == RECORDS - 1

    (letter,) = read_all(cluster.bootstrap_servers, dead, 1)
    assert dict(letter.headers)["traceparent"] == dict(sent[POISON][1])["traceparent"]
