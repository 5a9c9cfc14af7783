"""Calls that crashed with a bare TypeError or AttributeError, found by mypy.

None of them is reachable through validated options; each is a direct use of a
part (tests, embedding code) that now fails with gkbroad's own error, as
gkbroad/errors.py promises, or does nothing where there is nothing to do.
"""

import dataclasses

import pytest
from gevent import monkey

from gkbroad.engine.failure_policy import FailurePolicy
from gkbroad.errors import ConfigError
from gkbroad.kafka.client import ConsumerClient, KafkaError
from gkbroad.kafka.group import ConsumerGroup
from gkbroad.observability import StatsdSink
from tests.helpers.fake_kafka import FakeConsumerClient, make_group


def test_a_consumer_group_without_connection_settings_says_so():
    # Validated options always carry them (the `client` option or a group class with a
    # `client` attribute); before, building the group failed on `{**None}`.
    settings = make_group(FakeConsumerClient({}), ["t"]).settings
    with pytest.raises(ConfigError, match="consumer group unit-group: no kafka-python settings"):
        ConsumerGroup(dataclasses.replace(settings, client=None), consumer_client=FakeConsumerClient({}))


def test_a_failure_policy_without_its_limits_says_so():
    with pytest.raises(ConfigError, match="max_consecutive, or max_rate and window"):
        FailurePolicy(max_rate=0.5)


def test_statsd_sends_nothing_before_the_pipeline_started():
    sink = StatsdSink("p", "127.0.0.1", 8125, "gkbroad", 10)
    sink.after_ack(3, 1)
    sink.flush()
    sink.send_gauges({"in_flight": 0, "partitions": []})
    assert sink.client is None


@pytest.mark.skipif(not monkey.is_module_patched("socket"), reason="the Kafka client needs gevent's patching")
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.poll(100, 10),
        lambda c: c.assignment(),
        lambda c: c.pause([]),
        lambda c: c.seek(("t", 0), 0),
        lambda c: c.commit({}),
    ],
    ids=["poll", "assignment", "pause", "seek", "commit"],
)
def test_a_closed_kafka_client_raises_a_kafka_error(call):
    client = ConsumerClient({"bootstrap_servers": "127.0.0.1:9"}, ["t"])  # never connected: no traffic
    with pytest.raises(KafkaError, match="the consumer is closed"):
        call(client)
