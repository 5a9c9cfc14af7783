"""A whole run against the broker at DEBUG level, with a password and a token provider in the client
settings: neither appears in any log line (gkbroad's or kafka-python's), in repr() of the pipeline's
options, or in the consumer group's stats."""

from __future__ import annotations

import logging

from gkbroad.config.redact import REDACTED
from tests.helpers.pipeline_support import SeenOffsets, kafka_pipeline
from tests.helpers.support import wait_until

SECRET = "hunter2-Sup3rS3cret"
RECORDS = 50


class TokenProvider:
    def token(self):
        return SECRET

    def __repr__(self):
        return f"TokenProvider({SECRET})"


def test_a_debug_level_run_never_shows_the_password(cluster, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    topic = cluster.topic(2, prefix="secret")
    group = cluster.group_id()
    cluster.produce(topic, RECORDS, partitions=2)
    seen = SeenOffsets()
    client = {
        "bootstrap_servers": cluster.bootstrap_servers,
        # PLAINTEXT: the test broker has no SASL; kafka-python keeps these settings all the same.
        "sasl_plain_username": "orders",
        "sasl_plain_password": SECRET,
        "ssl_password": SECRET,
        "sasl_oauth_token_provider": TokenProvider(),
    }
    pipeline = kafka_pipeline(cluster.bootstrap_servers, group, [topic], context=seen, client=client)
    pipeline.start()
    try:
        wait_until(lambda: seen.handled_count >= RECORDS, 60, "every record handled")
        stats = [service.stats() for service in pipeline.services if hasattr(service, "stats")]
    finally:
        assert pipeline.stop(30)
    out, err = capsys.readouterr()
    assert "kafka" in caplog.text  # kafka-python's DEBUG lines were captured too
    assert f"'sasl_plain_password': '{REDACTED}'" in repr(pipeline.options)  # the settings are shown, redacted
    for shown in (caplog.text, out, err, repr(pipeline.options), repr(stats)):
        assert SECRET not in shown
