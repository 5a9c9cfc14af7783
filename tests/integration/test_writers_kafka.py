"""The writers' producer on each client library, against the real broker: many greenlets share one,
librdkafka's queue fills and drains, and the hub keeps running while they wait for the broker."""

from __future__ import annotations

import gevent
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from gkbroad.kafka.client import record_producer
from tests.helpers.hub_gaps import hub_gaps
from tests.helpers.kafka_options import client_settings

WRITERS, RECORDS = 20, 30


def read_values(bootstrap_servers, topic, count, timeout=30.0):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", group_id=None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        values = []
        with gevent.Timeout(timeout, AssertionError(f"only {len(values)} of {count} records in {topic}")):
            while len(values) < count:
                for batch in consumer.poll(timeout_ms=200).values():
                    values.extend(record.value for record in batch)
        return values
    finally:
        consumer.close()


def test_greenlets_sharing_one_record_producer_each_get_their_records_acknowledged_in_order(client_library, cluster):
    topic = cluster.topic(partitions=1, prefix="writers")
    settings = client_settings(cluster.bootstrap_servers, client_library)
    if client_library == "librdkafka":
        settings["queue.buffering.max.messages"] = 7  # a full queue (BufferError) many times over
    producer = record_producer(client_library, settings, timeout=20.0)

    def write(writer):
        records = [(topic, b"w%d" % writer, b"w%d-%d" % (writer, i), [("n", b"%d" % i)]) for i in range(RECORDS)]
        producer.send_all(records)

    try:
        with hub_gaps(0.05) as gaps:
            writers = [gevent.spawn(write, writer) for writer in range(WRITERS)]
            gevent.joinall(writers, timeout=60, raise_error=True)
            assert all(writer.successful() for writer in writers)
    finally:
        producer.close(5.0)

    values = read_values(cluster.bootstrap_servers, topic, WRITERS * RECORDS)
    assert len(values) == WRITERS * RECORDS
    for writer in range(WRITERS):  # each writer's records in its order
        mine = [value for value in values if value.startswith(b"w%d-" % writer)]
        assert mine == [b"w%d-%d" % (writer, i) for i in range(RECORDS)]
    # The hub ran while the writers waited: the 50 ms ticker was never held up for seconds.
    assert gaps.longest < 2.0, f"the hub was blocked {gaps.longest:.2f} s"
