"""A whole run against the broker at DEBUG level, with a password and a token provider in the client
settings: neither appears in any log line (gkbroad's or the client's: kafka-python's, librdkafka's
debug lines), in repr() of the pipeline's options, or in the consumer group's stats."""

from __future__ import annotations

import logging

from gkbroad.config.redact import REDACTED
from tests.helpers.pipeline_support import OffsetRecordingPipeline, SeenOffsets, kafka_pipeline
from tests.helpers.support import wait_until

SECRET = "hunter2-Sup3rS3cret"
RECORDS = 50


class TokenProvider:
    def token(self):
        return SECRET

    def __repr__(self):
        return f"TokenProvider({SECRET})"


class FailsTheFirst(OffsetRecordingPipeline):
    """Fails each partition's first record, so that the dead-letter writer's producer runs too."""

    def handle_message(self, processor, message, context):
        message = super().handle_message(processor, message, context)
        return message.failed("the first record of its partition") if message.data.offset == 0 else message


def secret_settings(bootstrap_servers, client_library):
    """Client settings holding SECRET, in the names of `client_library`; (settings, the password's name).
    PLAINTEXT: the test broker has no SASL; both clients keep these settings all the same."""
    if client_library == "librdkafka":
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "sasl.username": "orders",
            "sasl.password": SECRET,
            "ssl.key.password": SECRET,
            "sasl.oauthbearer.config": f"principal=orders token={SECRET}",
            "debug": "conf,security,broker,cgrp",  # librdkafka's own debug lines, the configuration's among them
        }
        return settings, "sasl.password"
    settings = {
        "bootstrap_servers": bootstrap_servers,
        "sasl_plain_username": "orders",
        "sasl_plain_password": SECRET,
        "ssl_password": SECRET,
        "sasl_oauth_token_provider": TokenProvider(),
    }
    return settings, "sasl_plain_password"


def test_a_debug_level_run_never_shows_the_password(cluster, caplog, capfd, client_library):
    caplog.set_level(logging.DEBUG)
    topic = cluster.topic(2, prefix="secret")
    group = cluster.group_id()
    cluster.produce(topic, RECORDS, partitions=2)
    seen = SeenOffsets()
    client, password = secret_settings(cluster.bootstrap_servers, client_library)
    dead = cluster.topic(1, prefix="secret-dead")
    pipeline = kafka_pipeline(
        cluster.bootstrap_servers,
        group,
        [topic],
        context=seen,
        client=client,
        cls=FailsTheFirst,
        client_library=client_library,
        # The writers connect with the consumer's security settings: their producers see SECRET too.
        dead_letter={"topic": dead},
    )
    pipeline.start()
    try:
        wait_until(lambda: seen.handled_count >= RECORDS, 60, "every record handled")
        ends = cluster.end_offsets(topic, 2)
        wait_until(lambda: cluster.committed(group, topic) == ends, 60, "every offset committed, dead letters first")
        stats = [service.stats() for service in pipeline.services if hasattr(service, "stats")]
    finally:
        assert pipeline.stop(30)
    out, err = capfd.readouterr()  # librdkafka writes to the file descriptors itself when it has no logger
    assert "kafka" in caplog.text  # the client's own DEBUG lines were captured too
    if client_library == "librdkafka":  # and they show the configuration, the secrets redacted by librdkafka
        assert "sasl.password = [redacted]" in caplog.text
        assert "rdkafka#" not in err, "librdkafka wrote to stderr itself (a client without gkbroad's logger)"
    assert f"'{password}': '{REDACTED}'" in repr(pipeline.options)  # the settings are shown, redacted
    for shown in (caplog.text, out, err, repr(pipeline.options), repr(stats)):
        assert SECRET not in shown
