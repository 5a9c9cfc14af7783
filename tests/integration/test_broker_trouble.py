"""The consumer group when the brokers or its topics are not there: a stop
bounded by its budget, and gkbroad's own words about what is wrong.

Each test runs a broker of its own (it is killed or started late)."""

from __future__ import annotations

import logging
import resource
import time

import gevent
import pytest

from gkbroad.testing.broker import LocalBroker
from tests.helpers.group_support import Consumer, build_group
from tests.helpers.kafka_helpers import Cluster, create_topic
from tests.helpers.kafka_options import producer_options, quick_client
from tests.helpers.support import free_port, wait_until


def group_on(cluster: Cluster, topic: str, client_library: str = "kafka-python", **options):
    group_options = producer_options(
        cluster.bootstrap_servers,
        cluster.group_id(),
        [topic],
        client=quick_client(cluster.bootstrap_servers, client_library),
        client_library=client_library,
        **options,
    )
    return build_group(**group_options)


def gkbroad_records(caplog, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gkbroad") and r.levelno == level and text in r.getMessage()]


@pytest.mark.long
def test_stop_while_the_broker_is_down_keeps_to_its_budget_and_says_what_is_lost(client_library, caplog, report):
    broker = LocalBroker(port=free_port()).start()
    cluster = Cluster(broker.bootstrap_servers)
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 20)
    group = group_on(cluster, topic, client_library, drain_timeout=20000)
    group.start()
    try:
        consumer = Consumer(group, ack=False)
        consumer.run_until(20, timeout=60)
        first, rest = consumer.unacked[:5], consumer.unacked[5:]
        group.ack(first)
        wait_until(lambda: cluster.committed(group.group_name, topic) == {0: 5}, 60, "the first commit", interval=0.2)
        broker.stop()
        group.ack(rest[:10])  # acknowledged after the broker went away: cannot be committed
        begun = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="gkbroad"):
            clean = group.stop(timeout=8)
        took = time.monotonic() - begun
    finally:
        broker.stop()
        group.stop(timeout=1)
    report(f"ConsumerGroup.stop(timeout=8) with the broker down on {client_library}: {took:.1f}s, returned {clean}")
    assert clean is False
    assert took < 8 + 3, f"stop took {took:.1f}s with an 8s budget"
    lost = gkbroad_records(caplog, logging.WARNING, "acknowledged record(s) could not be committed")
    assert len(lost) == 1 and "10 acknowledged record(s)" in lost[0].getMessage()


@pytest.mark.long
def test_unreachable_brokers_are_reported_once_per_interval_and_their_return_once(client_library, caplog):
    port = free_port()
    broker = LocalBroker(port=port)
    cluster = Cluster(f"127.0.0.1:{port}")
    group = group_on(cluster, "orders", client_library)
    caplog.set_level(logging.INFO, logger="gkbroad")
    group.start()
    try:
        gevent.sleep(6)  # several connection attempts
        down = gkbroad_records(caplog, logging.WARNING, "cannot reach the Kafka brokers")
        assert len(down) == 1
        assert f"127.0.0.1:{port}" in down[0].getMessage() and "retrying" in down[0].getMessage()
        broker.start()
        create_topic(cluster.bootstrap_servers, "orders", 1, exist_ok=True)  # the subscribed group may be first
        cluster.produce("orders", 5)
        Consumer(group).run_until(5, timeout=60)
        back = gkbroad_records(caplog, logging.INFO, "reachable again")
        assert len(back) == 1
        caplog.clear()
        broker.stop()  # lost while running
        wait_until(
            lambda: gkbroad_records(caplog, logging.WARNING, "cannot reach the Kafka brokers"), 30, "the warning"
        )
        gevent.sleep(4)
        assert len(gkbroad_records(caplog, logging.WARNING, "cannot reach the Kafka brokers")) == 1
    finally:
        broker.stop()
        group.stop(timeout=10)


@pytest.mark.parametrize(
    ("client_library", "setting"),
    [("kafka-python", "allow_auto_create_topics"), ("librdkafka", "allow.auto.create.topics")],
)
def test_the_consumer_asks_the_broker_not_to_create_missing_topics(cluster, client_library, setting):
    # The bundled Tansu creates a subscribed topic even when asked not to, so
    # what can be checked here is that the client is told so; the warning
    # about a missing topic is tested over the in-memory client.
    group = group_on(cluster, cluster.topic(partitions=1), client_library)
    group.start()
    try:
        wait_until(lambda: group.consumer_client.connected, 30, "the consumer")
        assert group.consumer_client.settings[setting] is False
    finally:
        group.stop(timeout=10)


@pytest.mark.long
def test_the_poll_loop_does_not_spin_while_the_broker_is_down(client_library):
    broker = LocalBroker(port=free_port()).start()
    cluster = Cluster(broker.bootstrap_servers)
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 5)
    group = group_on(cluster, topic, client_library)
    group.start()
    try:
        Consumer(group).run_until(5, timeout=60)
        broker.stop()
        gevent.sleep(3)  # kafka-python notices and starts retrying
        cpu_before, wall_before = _cpu_seconds(), time.monotonic()
        gevent.sleep(5)
        share = (_cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    finally:
        broker.stop()
        group.stop(timeout=5)
    assert share < 0.5, f"the process used {share:.0%} of a core while waiting for the broker"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
