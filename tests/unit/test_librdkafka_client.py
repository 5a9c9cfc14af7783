"""The librdkafka client's parts that need no broker: its options, its settings, its record translation.

The client itself is exercised against the broker by the integration tests parametrized over
``client_library`` (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import time

import confluent_kafka
import pytest

from gkbroad.config.redact import REDACTED, redact
from gkbroad.config.validation import validate
from gkbroad.kafka.client import TopicPartition, WriterConnection, rdkafka_consumer
from gkbroad.kafka.client.rdkafka_commits import Commits
from gkbroad.kafka.client.rdkafka_support import Statistics, as_records, by_partition
from gkbroad.kafka.group.settings import GroupSettings
from gkbroad.kafka.options import KafkaProducerOptions
from tests.helpers.engine_support import kafka_config_error

GOOD = {
    "group_name": "g",
    "client_library": "librdkafka",
    "client": {"bootstrap.servers": "x:1"},
    "topics": [{"name": "t"}],
}


def error_for(kafka_options):
    return kafka_config_error({**GOOD, **kafka_options})


BAD = [
    (
        {"client": {"bootstrap.servers": "x:1", "no.such.setting": 1}},
        "producer.module.client.no.such.setting: librdkafka refused it: No such configuration property: "
        '"no.such.setting"',
    ),
    (
        {"client": {"bootstrap.servers": "x:1", "session.timeout.ms": "soon"}},
        "producer.module.client.session.timeout.ms: is set by gkbroad; use the 'session_timeout_ms' option",
    ),
    (
        {"client": {"bootstrap_servers": "x:1"}},
        "producer.module.client.bootstrap_servers: is kafka-python's name; librdkafka's settings are dotted, "
        "e.g. 'bootstrap.servers'",
    ),
    (
        {"client": {"bootstrap.servers": "x:1", "queued.min.messages": 10}},
        "producer.module.client.queued.min.messages: is set by gkbroad; use the 'topics[].max_buffer_records' option",
    ),
    ({"partition_assignment_strategy": "sticky"}, "producer.module.partition_assignment_strategy: must be one of"),
    (
        {"exactly_once": {"transactional_id": "t", "client": {"transactional.id": "u"}}},
        "producer.module.exactly_once.client.transactional.id: is set by gkbroad; use the "
        "'exactly_once.transactional_id' option",
    ),
    (
        {"dead_letter": {"topic": "d", "client": {"compression_type": "gzip"}}},
        "producer.module.dead_letter.client.compression_type: is kafka-python's name; librdkafka's settings are "
        "dotted, e.g. 'compression.type'",
    ),
    (
        {"outputs": {"client": {"compression.type": "bzip9"}}},
        # librdkafka names the property it knows the alias by
        'producer.module.outputs.client.compression.codec: librdkafka refused it: Invalid value "bzip9" for '
        'configuration property "compression.codec"',
    ),
    (
        {"retry_topic": {"topic": "r", "client": {"acks": 0}}},
        "producer.module.retry_topic.client.acks: must be 1 or 'all'",
    ),
    (
        {"outputs": {"client": {"transactional.id": "x"}}},
        "producer.module.outputs.client.transactional.id: is set by gkbroad; use the "
        "'exactly_once.transactional_id' option",
    ),
]


@pytest.mark.parametrize("options, expected", BAD, ids=[repr(o) for o, _ in BAD])
def test_bad_librdkafka_options_fail_at_construction(options, expected):
    assert expected in error_for(options)


def test_librdkafka_secrets_are_redacted():
    shown = redact(
        {"bootstrap.servers": "x:1", "sasl.password": "a", "ssl.key.pem": "b", "sasl.oauthbearer.config": "c"}
    )
    assert shown == {
        "bootstrap.servers": "x:1",
        "sasl.password": REDACTED,
        "ssl.key.pem": REDACTED,
        "sasl.oauthbearer.config": REDACTED,
    }


def test_the_group_options_become_librdkafka_settings():
    options = validate(
        KafkaProducerOptions,
        {**GOOD, "instance_id": "web-1", "fetch_strategy": {"max_wait_ms": 20}, "session_timeout_ms": 6000},
        "producer.module",
    )
    settings = GroupSettings.from_options(options).librdkafka_settings(options["client"])
    assert {key: settings[key] for key in ("group.id", "group.instance.id", "fetch.wait.max.ms")} == {
        "group.id": "g",
        "group.instance.id": "web-1",
        "fetch.wait.max.ms": 20,
    }
    assert (settings["enable.auto.commit"], settings["enable.auto.offset.store"]) == (False, False)
    assert (settings["auto.offset.reset"], settings["session.timeout.ms"]) == ("error", 6000)
    assert settings["partition.assignment.strategy"] == "cooperative-sticky"
    assert settings["queued.min.messages"] == 250  # the poll batch: a quarter of max_buffer_records 1,000
    confluent_kafka.Consumer({**settings, "log_level": 0}).close()  # librdkafka takes all of them


def report(broker_state: str, coordinator_state: str, coordinator_idle_us: int = -1, join_state: str = "steady") -> str:
    """A librdkafka statistics document with one broker and the group coordinator in these states."""
    return json.dumps(
        {
            "brokers": {
                "127.0.0.1:9092/1": {"state": broker_state, "rxidle": -1},
                "GroupCoordinator": {"state": coordinator_state, "rxidle": coordinator_idle_us},
            },
            "cgrp": {"state": "up", "join_state": join_state},
        }
    )


def test_a_librdkafka_member_counts_as_reachable_only_once_a_report_shows_a_broker_up():
    stats = Statistics()
    assert not stats.reachable, "nothing is known to be up before the first report"
    stats.read(report("UP", "UP", 200_000))
    assert stats.reachable and stats.no_coordinator() is None
    stats.brokers_down = True  # error_cb: _ALL_BROKERS_DOWN
    assert not stats.reachable and stats.no_coordinator() == "librdkafka reported every broker down"
    stats.read(report("CONNECT", "CONNECT"))
    assert not stats.reachable, "a report without a broker up does not say one is back"
    assert stats.no_coordinator() == "librdkafka reported every broker down"
    stats.read(report("UP", "CONNECT"))
    assert stats.reachable, "a report with a broker up says one is back"
    assert stats.no_coordinator() == "the group coordinator was not connected in librdkafka's last statistics report"


def test_the_coordinators_last_answer_is_kept_while_its_connection_is_down():
    stats = Statistics()
    before = time.monotonic()
    stats.read(report("UP", "UP", 3_000_000))
    answered = stats.coordinator_answered
    assert answered is not None and before - 3.0 <= answered <= time.monotonic() - 3.0
    stats.read(report("INIT", "INIT"))
    assert stats.coordinator_answered == answered and stats.steady


class SilentConsumer:
    """Stands in for confluent-kafka's Consumer where the rebalance callbacks only ask for the group metadata."""

    def consumer_group_metadata(self):
        return None


class Handler:
    """A rebalance handler that takes what it is given."""

    def assigned(self, tps):
        pass

    def lost(self, tps):
        pass


def test_a_lost_membership_does_not_count_as_the_coordinator_answering(monkeypatch):
    monkeypatch.setattr(rdkafka_consumer, "check_gevent_patched", lambda: None)  # nothing here touches the network
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    client = rdkafka_consumer.LibrdkafkaClient({"bootstrap.servers": "127.0.0.1:1", "session.timeout.ms": 6000}, ["t"])
    consumer = client._consumer = SilentConsumer()
    client._handler = Handler()
    assert client.coordinator_silence() is None, "no report yet"
    client._on_statistics(report("UP", "UP", 5_000_000))
    assert client.coordinator_silence() == 5.0
    client._on_assign(consumer, [confluent_kafka.TopicPartition("t", 0)])
    assert client.coordinator_silence() == 0.0, "an assignment is an answer of the coordinator"
    now[0] += 6.0
    client._on_statistics(report("UP", "UP", 6_000_000))
    client._on_lost(consumer, [confluent_kafka.TopicPartition("t", 0)])
    assert client.coordinator_silence() == 6.0, "a loss is no answer: the session fence would end at once"
    client._on_statistics(report("UP", "UP", 0, join_state="wait-join"))
    assert client.coordinator_silence() is None, "not a member of a generation while it joins"


class RefusingConsumer:
    """A consumer that fails the test if a commit reaches it."""

    def commit(self, **kwargs):
        raise AssertionError(f"a commit was sent: {kwargs}")


def test_a_synchronous_commit_without_a_coordinator_fails_at_once_unsent():
    commits = Commits(confluent_kafka, lambda: 0)
    future = commits.add([confluent_kafka.TopicPartition("t", 0, 5)], timeout=30)
    commits.send(RefusingConsumer(), synchronously=True, refusal="librdkafka reported every broker down")
    assert future.failed()
    assert str(future.exception).endswith("offset commit not sent: librdkafka reported every broker down")


def test_messages_become_consumer_records_grouped_by_partition():
    messages = [
        confluent_kafka.Message(topic="t", partition=1, offset=5, key=b"k", value=b"v", timestamp=(1, 1234)),
        confluent_kafka.Message(topic="t", partition=1, offset=6, value=b"w", headers=[("h", b"x")], timestamp=(1, 9)),
        confluent_kafka.Message(topic="t", partition=0, offset=2, value=b"z", timestamp=(1, 7)),
        confluent_kafka.Message(topic="t", partition=1, offset=7, value=b"y", timestamp=(1, 10)),
    ]
    fetched = by_partition(as_records(messages), {})
    assert {tp: [r.offset for r in records] for tp, records in fetched.items()} == {
        TopicPartition("t", 1): [5, 6, 7],
        TopicPartition("t", 0): [2],
    }
    first, second = fetched[TopicPartition("t", 1)][:2]
    assert (first.topic, first.key, first.value, first.timestamp, first.timestamp_type) == ("t", b"k", b"v", 1234, 1)
    assert (first.headers, second.headers) == ((), [("h", b"x")])
    assert first._replace(value=b"decoded").value == b"decoded"  # the decoding step replaces fields


def test_the_writers_connect_with_the_consumers_security_settings_in_librdkafkas_names():
    consumer = {
        "bootstrap.servers": "x:1",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "ssl.ca.pem": "PEM",
        "enable.ssl.certificate.verification": False,
        "socket.keepalive.enable": True,
        "queued.max.messages.kbytes": 5,
        "client.id": "orders",
    }
    connection = WriterConnection("librdkafka", consumer)
    assert connection.producer_settings("gkbroad-outputs", {"compression.type": "lz4", "bootstrap.servers": "y:2"}) == {
        "bootstrap.servers": "y:2",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "ssl.ca.pem": "PEM",
        "enable.ssl.certificate.verification": False,
        "socket.keepalive.enable": True,
        "client.id": "gkbroad-outputs",
        "compression.type": "lz4",
    }
