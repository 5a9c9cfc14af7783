"""ConsumerGroup against the real broker, without the pipeline engine.

The tests drive ``pull``/``ack`` themselves from greenlets, the way producer
stages do, and read the outcome back from Kafka with independent clients.
"""

import os
import subprocess
import sys
import time

import gevent
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from gkbroad.kafka.consumer_group import ConsumerGroup
from gkbroad.kafka.fetcher_fix import release_exhausted_batch

SESSION = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def make_group(cluster, topic, group_id, cls=ConsumerGroup, topic_config=None, **options):
    config = {"name": topic, "offset_reset_policy": "earliest", **(topic_config or {})}
    return cls(group_id, [config], client={"bootstrap_servers": cluster.bootstrap_servers},
               **{**SESSION, **options})


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        gevent.sleep(0.05)


class Consumer:
    """Pulls from a group like a producer stage, acking at once or later."""

    def __init__(self, group, batch=100, ack=True):
        self.group = group
        self.batch = batch
        self.auto_ack = ack
        self.seen = {}          # partition -> [offsets] in pull order
        self.unacked = []       # (topic, partition, offset, epoch) kept back

    @property
    def count(self):
        return sum(len(offsets) for offsets in self.seen.values())

    def pull_round(self):
        pulled = 0
        for topic, partition in self.group.assigned_partitions():
            epoch, records = self.group.pull(topic, partition, self.batch)
            acks = [(r.topic, r.partition, r.offset, epoch) for r in records]
            self.seen.setdefault(partition, []).extend(r.offset for r in records)
            if self.auto_ack:
                self.group.ack(acks)
            else:
                self.unacked.extend(acks)
            pulled += len(records)
        return pulled

    def run_until(self, count, timeout, pause=0.0):
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise AssertionError("pulled %d of %d records in %ss; stats: %s"
                                     % (self.count, count, timeout, self.group.stats()))
            if not self.pull_round():
                self.group.wait_for_records(0.2)
            if pause:
                gevent.sleep(pause)
            else:
                gevent.sleep(0)


def test_pulls_every_record_in_order_and_commits_end_offsets_on_stop(cluster):
    topic = cluster.topic(partitions=3)
    written = cluster.produce(topic, 600)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id)
    group.start()
    try:
        consumer = Consumer(group)
        consumer.run_until(600, timeout=60)
    finally:
        group.stop(timeout=30)
    for partition, values in written.items():
        assert consumer.seen[partition] == list(range(len(values)))
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 3)
