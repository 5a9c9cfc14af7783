"""Retries that do not hold the lane (processors.default.retry.mode = "topic"), against the real broker.

A handler fails each record twice, then succeeds; one poison record always fails. What is checked:
every record succeeds exactly once after its retries, the first attempts of all records run
without waiting for any retry (the lane never stalls), each wait between attempts is at least the
configured backoff (doubling), the retry topic is created by gkbroad on request, the poison record
reaches the dead-letter topic with the error of every attempt, everything is committed, and the
Prometheus counters count each write to the retry topic and the dead letter.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

import gkbroad
from gkbroad.kafka import Producer
from gkbroad.observability.prometheus import exposition
from tests.helpers.kafka_helpers import partition_count
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until

RECORDS = 10
BACKOFF_MS = 1000


class FailsTwice(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        value = message.data.value
        context["attempts"][value].append((message.metadata["attempt"], time.monotonic()))
        if len(context["attempts"][value]) < 3 or value == b"poison":
            raise RuntimeError(f"attempt {message.metadata['attempt']} of {value!r} fails")
        context["succeeded"].append(value)
        return message


def dead_letters(bootstrap_servers, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, consumer_timeout_ms=3000)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        return list(consumer)
    finally:
        consumer.close()


def test_failed_attempts_wait_in_the_retry_topic_without_holding_the_lane(client_library, cluster):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    dead, parked = cluster.topic(partitions=1, prefix="gkb-dead"), f"{topic}.retry"
    values = [b"v%d" % i for i in range(RECORDS)]
    cluster.produce(topic, RECORDS, partitions=2)
    cluster.produce(topic, 1, partitions=1, value=lambda i: b"poison")
    context = {"attempts": defaultdict(list), "succeeded": []}
    options = producer_options(
        cluster.bootstrap_servers,
        group,
        [topic],
        retry_topic={"topic": parked, "create": True, "partitions": 1},
        dead_letter={"topic": dead},
        client_library=client_library,
    )
    name = f"retry-topic-{group}"
    pipeline = FailsTwice(
        name=name,
        producer={"module": (Producer, options)},
        processors={
            "default": {
                "concurrency": 2,
                "retry": {"max_attempts": 3, "backoff": BACKOFF_MS, "max_backoff": 10 * BACKOFF_MS, "mode": "topic"},
            }
        },
        context=context,
        shutdown_timeout=20000,
        metrics={"prometheus": {}},
    )
    pipeline.start()
    try:
        wait_until(lambda: len(context["succeeded"]) == RECORDS, 60, "every record to succeed on its third attempt")
        wait_until(lambda: len(context["attempts"][b"poison"]) == 3, 30, "the poison record's last attempt")
        wait_until(lambda: len(dead_letters(cluster.bootstrap_servers, dead)) == 1, 30, "the poison's dead letter")
        ends = {0: RECORDS // 2 + 1, 1: RECORDS // 2}
        wait_until(lambda: cluster.committed(group, topic) == ends, 30, "the main topic's commits")
        wait_until(lambda: cluster.committed(group, parked) == {0: 2 * (RECORDS + 1)}, 30, "the retry topic's commits")
    finally:
        assert pipeline.stop()

    assert partition_count(cluster.bootstrap_servers, parked) == 1  # created on request
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition().decode())
        for sample in family.samples
    }
    retried = found[("gkbroad_messages_retried_total", (("mode", "topic"), ("pipeline", name)))]
    assert retried == 2 * (RECORDS + 1), "two failed attempts of every record written to the retry topic"
    assert found[("gkbroad_dead_letters_written_total", (("pipeline", name),))] == 1
    assert Counter(context["succeeded"]) == Counter(dict.fromkeys(values, 1))
    attempts = context["attempts"]
    first_tries = [tries[0][1] for tries in attempts.values()]
    assert max(first_tries) - min(first_tries) < BACKOFF_MS / 1000, "a first attempt waited for a retry"
    for value, tries in attempts.items():
        assert [number for number, _ in tries] == [1, 2, 3], value
        waits = [later - earlier for (_, earlier), (_, later) in zip(tries, tries[1:], strict=False)]
        assert waits[0] >= BACKOFF_MS / 1000 and waits[1] >= 2 * BACKOFF_MS / 1000, (value, waits)

    (letter,) = dead_letters(cluster.bootstrap_servers, dead)
    headers = defaultdict(list)
    for name, header in letter.headers:
        headers[name].append(header.decode())
    assert letter.value == b"poison"
    assert headers["retry_source_topic"] == [topic] and headers["retry_attempt"] == ["3"]
    assert headers["retry_error"] == [
        "attempt 1: RuntimeError: attempt 1 of b'poison' fails",
        "attempt 2: RuntimeError: attempt 2 of b'poison' fails",
    ]
    assert headers["error"] == ["RuntimeError: attempt 3 of b'poison' fails"]
