"""The librdkafka client's parts that need no broker: its options, its settings, its record translation.

The client itself is exercised against the broker by the integration tests parametrized over
``client_library`` (tests/integration/conftest.py).
"""

from __future__ import annotations

import confluent_kafka
import pytest

from gkbroad.config.redact import REDACTED, redact
from gkbroad.config.validation import validate
from gkbroad.kafka.client import TopicPartition, WriterConnection
from gkbroad.kafka.client.rdkafka_support import as_records, by_partition
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
    # The retry topic's creation goes through kafka-python: only what translates is kept.
    assert connection.admin_settings(connection.producer_settings("gkbroad-retry", None)) == {
        "bootstrap_servers": "x:1",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
    }
