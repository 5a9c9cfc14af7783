"""Poison records against a real broker: a topic mixing valid, undecodable and invalid records is consumed
to its end; the bad ones reach handle_failed with their raw bytes, every offset is committed, and other
greenlets keep running meanwhile."""

from __future__ import annotations

import json
import time

import gevent
from marshmallow import Schema, fields

import gkbroad
from gkbroad.kafka.decoding import DecodeError
from tests.helpers.pipeline_support import kafka_pipeline
from tests.helpers.support import wait_until

PARTITIONS = 3
RECORDS = 600


class Order(Schema):
    id = fields.Integer(required=True)
    amount = fields.Integer(required=True)


def value_of(i: int) -> bytes:
    """Every third record is valid, the next is not JSON at all, the next is JSON the schema refuses."""
    kind = i % 3
    if kind == 0:
        return json.dumps({"id": i, "amount": i * 10}).encode()
    if kind == 1:
        return b"not json %d" % i
    return json.dumps({"id": i, "amount": "lots"}).encode()


class Seen:
    def __init__(self):
        self.handled = {}
        self.failed = {}


class OrdersPipeline(gkbroad.Pipeline):
    def handle_message(self, processor, message, context: Seen):
        meta = message.metadata
        context.handled[(meta["partition"], meta["offset"])] = (meta["key"], message.data)
        return message

    def handle_failed(self, messages, context: Seen):
        for message in messages:
            meta = message.metadata
            context.failed[(meta["partition"], meta["offset"])] = (message.failure_reason, meta["raw_value"])
        return messages


def tick(ticks: list[float]) -> None:
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)


def test_a_topic_of_mixed_records_is_consumed_to_its_end(cluster, report, client_library):
    topic = cluster.topic(PARTITIONS, prefix="decode")
    group = cluster.group_id()
    written = cluster.produce(topic, RECORDS, partitions=PARTITIONS, value=value_of)
    ends = cluster.end_offsets(topic, PARTITIONS)
    seen = Seen()
    pipeline = kafka_pipeline(
        cluster.bootstrap_servers,
        group,
        [topic],
        context=seen,
        cls=OrdersPipeline,
        message_format="value",
        default_topic_config={"value_deserializer": "json", "key_deserializer": "str", "value_schema": Order},
        client_library=client_library,
    )
    ticks: list[float] = []
    ticker = gevent.spawn(tick, ticks)
    pipeline.start()
    try:
        wait_until(lambda: len(seen.handled) + len(seen.failed) >= RECORDS, 120, "every record handled or failed")
        started = min(ticks)
        wait_until(lambda: cluster.committed(group, topic) == ends, 60, "every offset committed", interval=0.2)
    finally:
        assert pipeline.stop(30)
        ticker.kill()

    assert not set(seen.handled) & set(seen.failed)
    for partition, values in written.items():
        for offset, raw in enumerate(values):
            i = json.loads(raw)["id"] if raw[:1] == b"{" else int(raw.rsplit(b" ", 1)[1])
            if i % 3 == 0:
                assert seen.handled[(partition, offset)] == (f"k{i}", {"id": i, "amount": i * 10})
                continue
            reason, raw_value = seen.failed[(partition, offset)]
            assert raw_value == raw
            assert isinstance(reason, DecodeError)
            if i % 3 == 1:
                assert "value_deserializer 'json' failed: JSONDecodeError" in str(reason)
            else:
                assert reason.errors == {"amount": ["Not a valid integer."]}
                assert "Not a valid integer." in str(reason)
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    # The ticker kept running while poison records went through: no stall of the hub anywhere near a second.
    assert gaps and max(gaps) < 1.0, f"a greenlet was starved for {max(gaps):.2f}s"
    report(
        f"decoding on {client_library}: {RECORDS} records ({len(seen.failed)} poison) over {PARTITIONS} partitions consumed and "
        f"committed; longest pause of a 10 ms ticker {max(gaps) * 1000:.0f} ms over {ticks[-1] - started:.1f}s"
    )
