"""The writers' producer on each client library, against the real broker: many greenlets share one,
librdkafka's queue fills and drains, and the hub keeps running while they wait for the broker; and the
retry topic's creation through the same library."""

from __future__ import annotations

import time

import gevent
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from gkbroad.kafka.client import WriterConnection, record_producer
from gkbroad.kafka.client.admin import KafkaRequestError
from tests.helpers.hub_gaps import hub_gaps
from tests.helpers.kafka_helpers import partition_count, unique_name
from tests.helpers.kafka_options import client_settings
from tests.helpers.support import free_port

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


def test_the_retry_topic_is_created_through_the_consumers_library_once(client_library, cluster):
    connection = WriterConnection(client_library, client_settings(cluster.bootstrap_servers, client_library))
    settings = connection.producer_settings("gkbroad-retry", None)
    topic = unique_name("made.retry")
    assert connection.create_topic(settings, topic, 3, 10.0) is True
    assert partition_count(cluster.bootstrap_servers, topic) == 3
    assert connection.create_topic(settings, topic, 5, 10.0) is False  # there already: left as it is
    assert partition_count(cluster.bootstrap_servers, topic) == 3


def test_creating_a_topic_on_no_broker_fails_in_its_timeout_naming_the_topic_and_the_hub_runs(client_library):
    nowhere = client_settings(f"127.0.0.1:{free_port()}", client_library)
    connection = WriterConnection(client_library, nowhere)
    began = time.monotonic()
    with hub_gaps(0.05) as gaps, pytest.raises(KafkaRequestError, match="creating topic 'orders.retry'"):
        connection.create_topic(connection.producer_settings("gkbroad-retry", None), "orders.retry", 1, 2.0)
    assert time.monotonic() - began < 10
    assert gaps.longest < 1.0, f"the hub was blocked {gaps.longest:.2f} s"
