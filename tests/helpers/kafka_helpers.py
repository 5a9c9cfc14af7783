"""Helpers the integration tests use to set up and inspect Kafka state.

They talk to the broker with kafka-python directly (admin client, producer,
a group-less consumer), never through gkbroad, so that what they report is
independent of the code under test.
"""

import itertools
import os
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import TopicPartition

_counter = itertools.count()


def unique_name(prefix):
    """A name no other test (or earlier run against the same broker) used."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def create_topic(bootstrap_servers, name, partitions, exist_ok=False):
    """Create topic `name`; with `exist_ok`, one that exists already is left as it is.

    `exist_ok` is for a topic a consumer subscribed to before the broker was up:
    the bundled Tansu creates a subscribed topic itself when the consumer asks
    for its metadata, and may do so before the test does.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="gkbroad-tests")
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        if not exist_ok:
            raise
    finally:
        admin.close()
    return name


def partition_count(bootstrap_servers, topic):
    """How many partitions `topic` has (0 when the broker does not know it)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def produce(bootstrap_servers, topic, count, partitions=None, value=lambda i: b"v%d" % i):
    """Produce ``count`` keyed records (key ``k<i>``); with ``partitions`` they
    go round-robin over that many partitions, else the key decides. Returns
    {partition: [values in offset order]}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5)
    futures = []
    try:
        for i in range(count):
            partition = i % partitions if partitions else None
            futures.append(producer.send(topic, key=b"k%d" % i, value=value(i), partition=partition))
        producer.flush()
    finally:
        producer.close()
    written = {}
    for i, future in enumerate(futures):
        metadata = future.get(timeout=30)
        written.setdefault(metadata.partition, []).append((metadata.offset, value(i)))
    return {p: [v for _, v in sorted(items)] for p, items in written.items()}


def end_offsets(bootstrap_servers, topic, partitions, timeout=30.0):
    """{partition: end offset} (the offset the next produced record will get).

    Read from the high watermark of Fetch responses rather than from
    ListOffsets: the bundled Tansu answers ListOffsets(latest) with the base
    offset of the last record batch + 1, which is too low whenever that batch
    holds more than one record.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, max_poll_records=1)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high watermark for {topic} within {timeout}s")
            consumer.poll(timeout_ms=100)
        return {tp.partition: consumer.highwater(tp) for tp in tps}
    finally:
        consumer.close()


def committed_offsets(bootstrap_servers, group_id, topic):
    """{partition: offset Kafka stores for the group} (the next offset to read)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="gkbroad-tests")
    try:
        offsets = admin.list_group_offsets(group_id)[group_id]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


class Cluster:
    """The helpers above bound to one broker: what the ``cluster`` fixture gives."""

    def __init__(self, bootstrap_servers):
        self.bootstrap_servers = bootstrap_servers

    def topic(self, partitions=1, prefix="gkb"):
        """Create a fresh topic with ``partitions`` partitions; returns its name."""
        return create_topic(self.bootstrap_servers, unique_name(prefix), partitions)

    def group_id(self, prefix="gkb-group"):
        return unique_name(prefix)

    def produce(self, topic, count, partitions=None, value=lambda i: b"v%d" % i):
        return produce(self.bootstrap_servers, topic, count, partitions, value)

    def end_offsets(self, topic, partitions):
        return end_offsets(self.bootstrap_servers, topic, partitions)

    def committed(self, group_id, topic):
        return committed_offsets(self.bootstrap_servers, group_id, topic)
