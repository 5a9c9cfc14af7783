"""End to end: gkbroad pipelines with the Kafka producer against a real broker.

Each test uses a fresh topic and group. What is checked: every record handled,
per-partition offset order in handle_message and handle_batch, committed
offsets equal to the end offsets after a clean stop, and no record handled
twice across a clean restart.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer

import gkbroad
from gkbroad.kafka import ConsumerGroup
from tests.helpers.kafka_helpers import committed_offsets, create_topic, end_offsets, produce, unique_name
from tests.helpers.kafka_options import client_settings
from tests.helpers.pipeline_support import SeenOffsets, kafka_pipeline
from tests.helpers.support import wait_until

PARTITIONS = 8
RECORDS = 20_000


def assert_complete_and_ordered(seen: dict, topic: str, ends: dict) -> None:
    """Each partition's offsets were seen exactly once each, in offset order."""
    for partition, end in ends.items():
        offsets = seen.get((topic, partition), [])
        assert offsets == list(range(end)), (
            f"partition {partition}: {len(offsets)} offsets seen for {end} records; "
            f"first out of place at {next((i for i, o in enumerate(offsets) if o != i), None)}"
        )


@pytest.mark.long
@pytest.mark.parametrize(
    ("producer_concurrency", "client_library"),
    # The producer stages' concurrency is the engine's, the same over either client: librdkafka runs one of them.
    [(1, "kafka-python"), (3, "kafka-python"), (3, "librdkafka")],
)
def test_every_record_in_partition_order_and_committed(bootstrap_servers, producer_concurrency, client_library, report):
    topic = create_topic(bootstrap_servers, unique_name("e2e"), PARTITIONS)
    produce(bootstrap_servers, topic, RECORDS)
    ends = end_offsets(bootstrap_servers, topic, PARTITIONS)
    assert sum(ends.values()) == RECORDS
    group = unique_name("e2e-group")
    seen = SeenOffsets(max_sleep=0.002)
    pipeline = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=seen,
        producer_concurrency=producer_concurrency,
        processors=20,
        batchers={"default": {"batch_size": 100, "batch_timeout": 200}},
        client_library=client_library,
    )
    started = time.monotonic()
    pipeline.start()
    try:
        wait_until(lambda: sum(len(v) for v in seen.batched.values()) >= RECORDS, 120, "all records batched")
    finally:
        assert pipeline.stop()
    elapsed = time.monotonic() - started
    assert_complete_and_ordered(seen.handled, topic, ends)
    assert_complete_and_ordered(seen.batched, topic, ends)
    assert seen.mixed_batches == 0, "a batch held records of more than one partition"
    assert committed_offsets(bootstrap_servers, group, topic) == ends
    report(
        f"e2e {client_library} producers={producer_concurrency}: {RECORDS} records over {PARTITIONS} partitions, "
        f"20 processors, batcher: {elapsed:.1f}s including the group join, duplicates {seen.duplicates()}"
    )

    # A restart after the clean stop starts from the committed offsets: only new records arrive.
    produce(bootstrap_servers, topic, 100)
    again = SeenOffsets()
    restarted = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=again,
        batchers={"default": {"batch_size": 10, "batch_timeout": 100}},
        client_library=client_library,
    )
    restarted.start()
    try:
        wait_until(lambda: again.handled_count >= 100, 60, "the 100 new records")
        time.sleep(1.0)  # time for anything handled twice to show up
    finally:
        assert restarted.stop()
    assert again.handled_count == 100
    for (_, partition), offsets in again.handled.items():
        assert min(offsets) >= ends[partition], "a record committed before the restart was handled again"


def test_value_format_metadata(bootstrap_servers, client_library):
    topic = create_topic(bootstrap_servers, unique_name("fmt"), 2)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    producer.send(topic, key=b"k1", value=b"hello", partition=1, headers=[("trace", b"abc")])
    producer.flush()
    producer.close()
    seen = []

    class Capture(gkbroad.Pipeline):
        def handle_message(self, processor, message, context):
            seen.append(message)
            return message

    pipeline = kafka_pipeline(
        bootstrap_servers,
        unique_name("fmt-group"),
        [topic],
        context=None,
        cls=Capture,
        message_format="value",
        client_library=client_library,
    )
    pipeline.start()
    try:
        wait_until(lambda: seen, 60, "the record")
    finally:
        assert pipeline.stop()
    message = seen[0]
    assert message.data == b"hello"
    meta = message.metadata
    assert (meta["topic"], meta["partition"], meta["offset"], meta["key"]) == (topic, 1, 0, b"k1")
    assert meta["headers"] == [("trace", b"abc")]
    assert isinstance(meta["ts"], int) and meta["ts"] > 0
    assert message.batch_key == (topic, 1)


def test_record_format_is_the_consumer_record(bootstrap_servers, client_library):
    topic = create_topic(bootstrap_servers, unique_name("rec"), 1)
    produce(bootstrap_servers, topic, 3)
    seen = SeenOffsets()
    captured = []

    class Capture(gkbroad.Pipeline):
        def handle_message(self, processor, message, context):
            captured.append(message)
            return message

    pipeline = kafka_pipeline(
        bootstrap_servers, unique_name("rec-group"), [topic], context=seen, cls=Capture, client_library=client_library
    )
    pipeline.start()
    try:
        wait_until(lambda: len(captured) == 3, 60, "3 records")
    finally:
        assert pipeline.stop()
    record = captured[0].data
    assert (record.topic, record.partition, record.offset, record.key, record.value) == (topic, 0, 0, b"k0", b"v0")
    assert captured[0].metadata == {}


def test_consumer_group_callbacks(bootstrap_servers, client_library):
    topic = create_topic(bootstrap_servers, unique_name("cb"), 4)
    events = []

    class Tracked(ConsumerGroup):
        client = client_settings(bootstrap_servers, client_library)

        def handle_consumer_start(self, topic, partition, group_name):
            events.append(("start", topic, partition, group_name))

        def handle_consumer_stop(self, topic, partition, group_name, reason):
            events.append(("stop", topic, partition, group_name, reason))

    group = unique_name("cb-group")
    pipeline = kafka_pipeline(
        bootstrap_servers, group, [topic], context=SeenOffsets(), consumer_group=Tracked, client_library=client_library
    )
    pipeline.start()
    try:
        wait_until(lambda: len(events) == 4, 60, "4 partitions assigned")
    finally:
        assert pipeline.stop()
    starts = sorted(e for e in events if e[0] == "start")
    stops = sorted(e for e in events if e[0] == "stop")
    assert starts == [("start", topic, p, group) for p in range(4)]
    assert stops == [("stop", topic, p, group, "shutdown") for p in range(4)]


@pytest.mark.long
def test_slow_handler_keeps_the_membership(bootstrap_servers, client_library):
    """A handler slower than the poll interval (kafka-python's max_poll_interval_ms, librdkafka's
    max.poll.interval.ms, which gkbroad sets from rebalance_timeout_ms) must not cost the group its partitions."""
    topic = create_topic(bootstrap_servers, unique_name("slow"), 2)
    produce(bootstrap_servers, topic, 20)
    stops = []
    if client_library == "librdkafka":
        settings, poll_interval = client_settings(bootstrap_servers, client_library), {"rebalance_timeout_ms": 6000}
    else:
        settings, poll_interval = client_settings(bootstrap_servers, max_poll_interval_ms=6000), {}

    class Watched(ConsumerGroup):
        client = settings

        def handle_consumer_stop(self, topic, partition, group_name, reason):
            stops.append(reason)

    seen = SeenOffsets(slow_first=9.0)
    pipeline = kafka_pipeline(
        bootstrap_servers,
        unique_name("slow-group"),
        [topic],
        context=seen,
        consumer_group=Watched,
        drain_timeout=5000,
        client_library=client_library,
        **poll_interval,
    )
    pipeline.start()
    try:
        wait_until(lambda: seen.handled_count == 20, 60, "all 20 records despite a 9 s handler")
        assert stops == [], f"partitions were given up during the slow handler: {stops}"
    finally:
        assert pipeline.stop()
    assert seen.duplicates() == 0


def test_full_buffers_pause_and_resume(bootstrap_servers, client_library):
    """Partitions with more records than their buffer holds are paused and resumed until all arrive."""
    topic = create_topic(bootstrap_servers, unique_name("pause"), 2)
    produce(bootstrap_servers, topic, 3000)
    ends = end_offsets(bootstrap_servers, topic, 2)
    seen = SeenOffsets(max_sleep=0.0005)
    group = unique_name("pause-group")
    pipeline = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=seen,
        default_topic_config={"max_buffer_records": 25},
        client_library=client_library,
    )
    pipeline.start()
    try:
        wait_until(lambda: seen.handled_count >= 3000, 120, "all 3000 records through 25-record buffers")
    finally:
        assert pipeline.stop()
    assert_complete_and_ordered(seen.handled, topic, ends)
    assert committed_offsets(bootstrap_servers, group, topic) == ends
