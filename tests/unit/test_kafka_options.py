"""The Kafka producer's options are checked once, by its schema, when the
pipeline is built: errors name the option path, what was expected and what was
given, and no ConsumerGroup (nor broker connection) is created for bad ones.

The ConsumerGroup takes the validated options as they are, so what it relies
on (one isolation level for all topics, settings kafka-python knows, topic
defaults) is checked and filled in here."""

import pytest

from gkbroad.config.validation import validate
from gkbroad.kafka import ConsumerGroup
from gkbroad.kafka.group.settings import GroupSettings
from gkbroad.kafka.options import KafkaProducerOptions
from tests.helpers.engine_support import kafka_config_error

GOOD = {"group_name": "g", "client": {"bootstrap_servers": "x:1"}, "topics": [{"name": "t"}]}


class ManagedSettingGroup(ConsumerGroup):
    client = {"bootstrap_servers": "x:1", "group_id": "other", "no_such_setting": 1}


def error_for(kafka_options):
    return kafka_config_error({**GOOD, **kafka_options})


BAD = [
    (
        {"partition_assignment_strategy": "sticky-ish"},
        "producer.module.partition_assignment_strategy: must be one of cooperative-sticky, range, roundrobin, "
        "sticky, got 'sticky-ish'",
    ),
    (
        {"client": {"bootstrap_servers": "x:1", "group_id": "other"}},
        "producer.module.client.group_id: is set by gkbroad; use the 'group_name' option, got 'other'",
    ),
    (
        {"client": {"bootstrap_servers": "x:1", "no_such_setting": 1}},
        "producer.module.client.no_such_setting: is not a kafka-python KafkaConsumer setting, got 1",
    ),
    ({"client": {}}, "producer.module.client.bootstrap_servers: missing required option"),
    (
        {"client": {"bootstrap_servers": ""}},
        "producer.module.client.bootstrap_servers: must name at least one host:port, got ''",
    ),
    ({"committers_count": 0}, "producer.module.committers_count: must be a positive integer, got 0"),
    (
        {"fetch_strategy": {"max_wait": 5}},
        "producer.module.fetch_strategy.max_wait: unknown option (known options: max_bytes, max_wait_ms, "
        "min_bytes), got 5",
    ),
    ({"topics": []}, "producer.module.topics: must list at least one topic, got []"),
    (
        {"topics": [{"name": "a", "isolation_level": "read_committed"}, {"name": "b"}]},
        "producer.module.topics: must all have the same isolation_level (kafka-python reads all topics of a "
        "consumer with one); they have a=read_committed, b=read_uncommitted, got [{'name': 'a', "
        "'isolation_level': 'read_committed'}, {'name': 'b'}]",
    ),
    (
        {"heartbeat_interval_ms": 7000, "session_timeout_ms": 6000},
        "producer.module.heartbeat_interval_ms: must be lower than session_timeout_ms (6000), got 7000",
    ),
    (
        {"fetch_strategy": {"max_wait_ms": 40000}},
        "producer.module.fetch_strategy: kafka-python needs fetch_strategy.max_wait_ms (40000) < "
        "client.request_timeout_ms (30000) < client.connections_max_idle_ms (540000), got {'max_wait_ms': 40000}",
    ),
    (
        {"client": {"bootstrap_servers": "x:1", "max_poll_interval_ms": 6000}},
        "producer.module.drain_timeout: must be lower than the rebalance timeout (6000 ms, from "
        "rebalance_timeout_ms or client.max_poll_interval_ms): a drain that outlasts it costs the member its "
        "place in the group",
    ),
    (
        {"stall_timeout_ms": 30000},
        "producer.module.stall_timeout_ms: must be above drain_timeout (30000 ms): a rebalance waits for the "
        "other members' drains, and a member waiting for them is not stalled, got 30000",
    ),
    (
        {"instance_id": "web 1"},
        "producer.module.instance_id: must be 1-249 characters of ASCII letters, digits, '.', '_' and '-' "
        "(not '.' or '..'), got 'web 1'",
    ),
]


@pytest.mark.parametrize("options, expected", BAD, ids=[repr(o) for o, _ in BAD])
def test_a_bad_kafka_option_fails_the_pipeline_at_construction(options, expected):
    assert error_for(options) == expected


def test_the_client_of_a_consumer_group_class_is_checked_too():
    assert error_for({"client": None, "consumer_group": ManagedSettingGroup}).splitlines() == [
        "invalid options:",
        "  producer.module.consumer_group.client.group_id: is set by gkbroad; use the 'group_name' option",
        "  producer.module.consumer_group.client.no_such_setting: is not a kafka-python KafkaConsumer setting",
    ]


def test_default_topic_config_counts_for_the_shared_isolation_level():
    message = error_for(
        {
            "default_topic_config": {"isolation_level": "read_committed"},
            "topics": [{"name": "a"}, {"name": "b", "isolation_level": "read_uncommitted"}],
        }
    )

    assert message.startswith("producer.module.topics: must all have the same isolation_level")
    assert "they have a=read_committed, b=read_uncommitted" in message


def test_topic_defaults_are_filled_in_by_the_schema():
    options = validate(
        KafkaProducerOptions,
        {
            **GOOD,
            "default_topic_config": {"max_buffer_records": 40},
            "topics": [{"name": "a"}, {"name": "b", "max_buffer_records": 8}],
        },
    )

    assert options["topics"] == [
        {
            "name": "a",
            "offset_reset_policy": "latest",
            "fetch_max_bytes": None,  # the client's default, chosen by GroupSettings
            "max_buffer_records": 40,
            "isolation_level": "read_uncommitted",
            "key_deserializer": "bytes",
            "value_deserializer": "bytes",
            "value_schema": None,
        },
        {
            "name": "b",
            "offset_reset_policy": "latest",
            "fetch_max_bytes": None,
            "max_buffer_records": 8,
            "isolation_level": "read_uncommitted",
            "key_deserializer": "bytes",
            "value_deserializer": "bytes",
            "value_schema": None,
        },
    ]


def test_validated_topics_become_kafka_python_settings():
    group = GroupSettings.from_options(
        validate(
            KafkaProducerOptions,
            {
                **GOOD,
                "client": {"bootstrap_servers": "x:1", "client_id": "me"},
                "fetch_strategy": {"max_wait_ms": 0},
                "rebalance_timeout_ms": 9000,
                "drain_timeout": 5000,
                "partition_assignment_strategy": "range",
                "topics": [
                    {"name": "a", "fetch_max_bytes": 100, "isolation_level": "read_committed"},
                    {
                        "name": "b",
                        "fetch_max_bytes": 300,
                        "max_buffer_records": 40,
                        "isolation_level": "read_committed",
                    },
                ],
            },
        )
    )
    settings = group.kafka_settings(group.client)

    assert [cls.name for cls in settings.pop("partition_assignment_strategy")] == ["range"]
    assert settings == {
        "bootstrap_servers": "x:1",
        "client_id": "me",
        "group_id": "g",
        "group_instance_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "none",
        "isolation_level": "read_committed",
        "max_poll_records": 10,
        "max_partition_fetch_bytes": 300,
        "fetch_max_wait_ms": 0,
        "fetch_max_bytes": 1048576,  # fetch_strategy.max_bytes's default, applied with max_wait_ms set alone
        "max_poll_interval_ms": 9000,
        "allow_auto_create_topics": False,
    }


def test_an_unset_fetch_max_bytes_is_the_clients_default_and_the_largest_topic_wins():
    def partition_fetch_bytes(client_library, client, topics):
        options = {**GOOD, "client_library": client_library, "client": client, "topics": topics}
        group = GroupSettings.from_options(validate(KafkaProducerOptions, options))
        if client_library == "librdkafka":
            return group.librdkafka_settings(group.client)["max.partition.fetch.bytes"]
        return group.kafka_settings(group.client)["max_partition_fetch_bytes"]

    unset = [{"name": "a"}]
    assert partition_fetch_bytes("kafka-python", {"bootstrap_servers": "x:1"}, unset) == 256 * 1024
    assert partition_fetch_bytes("librdkafka", {"bootstrap.servers": "x:1"}, unset) == 64 * 1024
    # An unset topic counts as the default beside one that sets less.
    mixed = [{"name": "a"}, {"name": "b", "fetch_max_bytes": 100}]
    assert partition_fetch_bytes("librdkafka", {"bootstrap.servers": "x:1"}, mixed) == 64 * 1024
    larger = [{"name": "a"}, {"name": "b", "fetch_max_bytes": 100_000}]
    assert partition_fetch_bytes("librdkafka", {"bootstrap.servers": "x:1"}, larger) == 100_000


def test_consumers_create_topics_only_when_the_client_settings_ask():
    group = GroupSettings.from_options(validate(KafkaProducerOptions, GOOD))
    default = group.kafka_settings({"bootstrap_servers": "x:1"})
    asked = group.kafka_settings({"bootstrap_servers": "x:1", "allow_auto_create_topics": True})
    assert default["allow_auto_create_topics"] is False
    assert asked["allow_auto_create_topics"] is True
