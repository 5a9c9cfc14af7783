"""Dead letters and retries against the real broker: what reaches the dead-letter topic, and what
is committed when a dead letter cannot be written or a stop cuts a retry's backoff short."""

from __future__ import annotations

import time

import gevent
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

import gkbroad
from gkbroad.kafka import DeadLetter, DeadLetterError, Producer
from gkbroad.testing.broker import LocalBroker
from tests.helpers.kafka_options import client_settings, producer_options
from tests.helpers.support import free_port, wait_until


class PoisonFails(gkbroad.Pipeline):
    """Fails every record whose value starts with b"poison"; records what it handled."""

    def handle_message(self, processor, message, context):
        record = message.data
        context["handled"].append((record.partition, record.offset, message.metadata.get("attempt")))
        if record.value.startswith(b"poison"):
            raise ValueError(f"cannot use {record.value!r}")
        return message


def pipeline(bootstrap_servers, group, topic, context, *, processors=None, **overrides):
    return PoisonFails(
        name=f"dl-{group}",
        producer={
            "module": (
                Producer,
                # the group's stop waits drain_timeout for acks that will never come
                producer_options(bootstrap_servers, group, [topic], **{"drain_timeout": 2000, **overrides}),
            )
        },
        processors=processors or {"default": {"concurrency": 4, "max_demand": 5}},
        context=context,
    )


def produce_records(bootstrap_servers, topic, records):
    """records: (partition, key, value, headers); returns {partition: [offsets]} in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    try:
        futures = [producer.send(topic, key=k, value=v, headers=h, partition=p) for p, k, v, h in records]
        producer.flush()
        offsets = {}
        for future in futures:
            metadata = future.get(timeout=30)
            offsets.setdefault(metadata.partition, []).append(metadata.offset)
        return offsets
    finally:
        producer.close()


def read_all(bootstrap_servers, topic, count, timeout=30.0):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records = []
        with gevent.Timeout(timeout, AssertionError(f"only {len(records)} of {count} dead letters in {topic}")):
            while len(records) < count:
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(batch)
        return records
    finally:
        consumer.close()


def test_poison_records_end_in_the_dead_letter_topic_with_their_source_headers(client_library, cluster):
    topic, dead = cluster.topic(partitions=2, prefix="dl-src"), cluster.topic(partitions=1, prefix="dl-dead")
    group = cluster.group_id()
    records = []
    for i in range(40):
        value = b"poison-%d" % i if i % 10 == 3 else b"good-%d" % i
        records.append((i % 2, b"k%d" % i, value, [("trace", b"t%d" % i)]))
    produce_records(cluster.bootstrap_servers, topic, records)
    context = {"handled": []}
    # The writer's own settings are in the library's names: it produces through that library.
    compression = {"compression.type" if client_library == "librdkafka" else "compression_type": "gzip"}
    dead_letter = {"topic": dead, "client": compression}
    p = pipeline(
        cluster.bootstrap_servers, group, topic, context, dead_letter=dead_letter, client_library=client_library
    )
    p.start()
    try:
        wait_until(
            lambda: cluster.committed(group, topic) == {0: 20, 1: 20}, 60, "every offset committed", interval=0.2
        )
    finally:
        assert p.stop() is True
    letters = read_all(cluster.bootstrap_servers, dead, 4)

    assert len(letters) == 4
    by_key = {letter.key: letter for letter in letters}
    assert sorted(by_key) == [b"k13", b"k23", b"k3", b"k33"]
    letter = by_key[b"k13"]  # the 14th record: partition 1, offset 6
    headers = dict(letter.headers)
    assert letter.value == b"poison-13"
    assert headers["trace"] == b"t13"
    assert headers["source_topic"] == topic.encode()
    assert headers["source_partition"] == b"1" and headers["source_offset"] == b"6"
    assert headers["source_group"] == group.encode()
    assert headers["error"] == b"ValueError: cannot use b'poison-13'"


def test_with_the_dead_letter_cluster_unreachable_nothing_is_committed_past_the_first_failure(client_library, cluster):
    topic = cluster.topic(partitions=1, prefix="dl-down")
    group = cluster.group_id()
    values = [b"poison-%d" % i if i in (5, 8) else b"good-%d" % i for i in range(30)]
    produce_records(cluster.bootstrap_servers, topic, [(0, None, v, []) for v in values])
    context = {"handled": []}
    unreachable = client_settings(f"127.0.0.1:{free_port()}", client_library)
    p = pipeline(
        cluster.bootstrap_servers,
        group,
        topic,
        context,
        client_library=client_library,
        dead_letter={
            "topic": "never-written",
            "client": unreachable,
            "max_attempts": 2,
            "backoff": 100,
            "timeout": 1000,
        },
    )

    assert gevent.spawn(p.run).get(timeout=90) is False

    assert "dead letter(s) to 'never-written' failed 2 times" in p.failure
    assert p.status()["failure"] == p.failure
    committed = cluster.committed(group, topic).get(0)
    assert committed == 5, f"committed {committed}: offsets 0-4 were handled, the failure at 5 was not written"


@pytest.mark.long
def test_when_the_dead_letter_broker_stops_the_commit_stays_below_the_first_unwritten_failure(client_library, cluster):
    """The bundled broker creates missing topics, so "unreachable" is a dead-letter broker that is
    stopped mid-run: the failure before the outage is written and committed past, the one after it
    is neither."""
    topic = cluster.topic(partitions=1, prefix="dl-outage")
    group = cluster.group_id()
    first = [b"poison-a" if i == 3 else b"good-%d" % i for i in range(10)]
    produce_records(cluster.bootstrap_servers, topic, [(0, None, v, []) for v in first])
    dead_broker = LocalBroker(port=free_port()).start()
    dead_letter = {
        "topic": "dead",
        "client": client_settings(dead_broker.bootstrap_servers, client_library),
        "max_attempts": 2,
        "backoff": 100,
        "timeout": 2000,
    }
    p = pipeline(
        cluster.bootstrap_servers,
        group,
        topic,
        {"handled": []},
        dead_letter=dead_letter,
        client_library=client_library,
    )
    try:
        p.start()
        wait_until(
            lambda: cluster.committed(group, topic) == {0: 10}, 60, "the first ten records committed", interval=0.2
        )
        assert [letter.value for letter in read_all(dead_broker.bootstrap_servers, "dead", 1)] == [b"poison-a"]
        dead_broker.stop()
        second = [b"poison-b" if i == 4 else b"good-1%d" % i for i in range(10)]  # poison-b is offset 14
        produce_records(cluster.bootstrap_servers, topic, [(0, None, v, []) for v in second])

        assert p.join(timeout=90), "the pipeline did not stop after the dead-letter write failed"
    finally:
        dead_broker.stop()
        p.stop()

    assert "dead letter(s) to 'dead' failed 2 times" in p.failure
    assert cluster.committed(group, topic) == {0: 14}


def test_a_stop_during_a_retry_backoff_commits_nothing_past_the_retried_record(client_library, cluster, report):
    topic = cluster.topic(partitions=1, prefix="retry-stop")
    group = cluster.group_id()
    values = [b"poison" if i == 4 else b"good-%d" % i for i in range(10)]
    produce_records(cluster.bootstrap_servers, topic, [(0, None, v, []) for v in values])
    context = {"handled": []}
    retry = {"max_attempts": 5, "backoff": 60_000, "max_backoff": 60_000}
    p = pipeline(
        cluster.bootstrap_servers,
        group,
        topic,
        context,
        processors={"default": {"concurrency": 2, "max_demand": 10, "retry": retry}},
        drain_timeout=20_000,
        client_library=client_library,
    )
    p.start()
    try:
        wait_until(lambda: (0, 4, 1) in context["handled"], 60, "the first attempt of offset 4")
    finally:
        began = time.monotonic()
        clean = p.stop()
        took = time.monotonic() - began

    report(f"stop during a 60 s retry backoff (drain_timeout 20 s) on {client_library}: {took:.1f}s")
    assert clean is True
    # The withdrawn records are not waited for: the stop does not sit out the drain timeout.
    assert took < 15, f"the stop took {took:.1f}s"
    assert [offset for _, offset, _ in context["handled"]] == [0, 1, 2, 3, 4]
    assert cluster.committed(group, topic).get(0) == 4


def test_the_helper_retries_then_gives_up_on_a_broker_that_is_not_there(client_library):
    dead_letter = DeadLetter(
        "anywhere",
        client_settings(f"127.0.0.1:{free_port()}", client_library, **secret(client_library)),
        library=client_library,
        group_name="g",
        max_attempts=2,
        backoff=50,
        timeout=500,
    )
    failed = gkbroad.Message(
        data=None, acknowledger=gkbroad.Acknowledger(None, None, ("t", 0, 7, 1)), metadata={"topic": "t"}
    ).failed("boom")
    try:
        for _ in range(2):  # the second send fails at once: the writer stays broken
            try:
                dead_letter.send([failed])
            except DeadLetterError as exc:
                assert "failed 2 times" in str(exc)
                assert "hunter2" not in str(exc)
            else:
                raise AssertionError("send did not raise")
    finally:
        assert dead_letter.stop(1.0) is False


def secret(client_library):
    """A password in the library's names (the broker is not there: it is never sent)."""
    if client_library == "librdkafka":
        return {
            "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "u",
            "sasl.password": "hunter2",
        }
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "hunter2",
    }
