"""statsd metrics of a Kafka pipeline, received by a real UDP listener on 127.0.0.1.

A known run of N records (some failing) gives messages.handled + messages.failed
== N, and the per-partition lag gauges end at 0.
"""

from __future__ import annotations

import socket
from collections import defaultdict

import gevent

import gkbroad
from gkbroad.kafka import Producer
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until

RECORDS = 3000
PARTITIONS = 3


class FailingTenth(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        if message.data.offset % 10 == 0:
            return message.failed("every tenth record fails")
        return message

    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


class Listener:
    """Collects statsd lines from a UDP socket: counter sums, the last gauge values, timer names."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.counters = defaultdict(int)
        self.gauges = {}
        self.timers = defaultdict(int)
        self.names = set()
        self.greenlet = gevent.spawn(self._receive)

    def _receive(self):
        while True:
            for line in self.socket.recv(65536).decode().splitlines():
                name, _, value = line.partition(":")
                amount, kind = value.split("|")[:2]
                self.names.add(name)
                if kind == "c":
                    self.counters[name] += int(amount)
                elif kind == "g":
                    self.gauges[name] = float(amount)
                elif kind == "ms":
                    self.timers[name] += 1

    def close(self):
        self.greenlet.kill()
        self.socket.close()


def test_statsd_counts_every_record_and_lag_gauges_end_at_zero(cluster, client_library):
    topic = cluster.topic(PARTITIONS, prefix="statsd")
    cluster.produce(topic, RECORDS, PARTITIONS)
    listener = Listener()
    pipeline = FailingTenth(
        name="stats-it",
        producer={
            "module": (
                Producer,
                producer_options(
                    cluster.bootstrap_servers, cluster.group_id("statsd"), [topic], client_library=client_library
                ),
            )
        },
        processors={"default": {"concurrency": 10}},
        batchers={"default": {"batch_size": 50, "batch_timeout": 100}},
        metrics={"statsd": {"host": "127.0.0.1", "port": listener.port, "prefix": "gk", "interval": 1}},
    )
    prefix = "gk.stats-it."
    lags = [f"{prefix}lag.{topic}.{p}" for p in range(PARTITIONS)]
    pipeline.start()
    try:

        def done() -> bool:
            total = listener.counters[f"{prefix}messages.handled"] + listener.counters[f"{prefix}messages.failed"]
            return total >= RECORDS and all(listener.gauges.get(name) == 0 for name in lags)

        wait_until(done, timeout=90, what="all records counted and every lag gauge at 0")
    finally:
        pipeline.stop()
    gevent.sleep(0.2)  # the final flush of stop()
    listener.close()

    assert listener.counters[f"{prefix}messages.handled"] + listener.counters[f"{prefix}messages.failed"] == RECORDS
    assert (
        listener.counters[f"{prefix}messages.failed"] == sum(1 for i in range(RECORDS // PARTITIONS) if i % 10 == 0) * 3
    )
    assert listener.counters[f"{prefix}batches.handled"] >= RECORDS * 9 // 10 // 50
    assert listener.timers[f"{prefix}handle_message"] > 0 and listener.timers[f"{prefix}handle_batch"] > 0
    assert listener.timers[f"{prefix}commit"] > 0  # the consumer group's commits, through after_commit
    assert {f"{prefix}in_flight", f"{prefix}partitions.assigned"} <= set(listener.gauges)
    assert all(name.startswith(prefix) for name in listener.names), sorted(listener.names)
