"""Steering where a group reads, against the real broker: `gkbroad offsets show|reset`, a topic that
starts from a point in time, and the one-shot commands connecting with a pipeline's TOML file.

Records are produced in two rounds with a pause between them, and the time in that pause is the
point the group is moved to: the records of the second round are exactly the ones at or after it.
Offsets are read back with kafka-python directly (kafka_helpers), never through the code under test.
"""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime

from kafka import KafkaProducer

import gkbroad
from gkbroad.kafka import Producer
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import free_port, wait_until
from tests.integration.test_cli import gkbroad as run_gkbroad


class Values(gkbroad.Pipeline):
    """Records (partition, value) of each handled record in context (a list)."""

    def handle_message(self, processor, message, context):
        context.append((message.data.partition, message.data.value))
        return message


def one_by_one(cluster, topic, count, partitions):
    """Produce b"old<i>" round-robin, each record its own batch: the bundled Tansu answers a seek to
    the end with the last batch's base offset + 1, which is the true end only for one-record batches."""
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
    written = {}
    try:
        for i in range(count):
            producer.send(topic, value=b"old%d" % i, partition=i % partitions).get(timeout=30)
            written.setdefault(i % partitions, []).append(b"old%d" % i)
    finally:
        producer.close()
    return written


def two_rounds(cluster, topic, partitions, first=6, second=6, second_partitions=None):
    """Produce `first` records (values b"old<i>"), wait, note the time, wait, produce `second` (b"new<i>").
    Returns (the time in ms since the epoch, {partition: next offset after the first round}, [new values])."""
    old = one_by_one(cluster, topic, first, partitions)
    time.sleep(0.3)
    middle = int(time.time() * 1000)
    time.sleep(0.3)
    new = cluster.produce(topic, second, partitions=second_partitions or partitions, value=lambda i: b"new%d" % i)
    starts = {partition: len(old.get(partition, [])) for partition in range(partitions)}
    return middle, starts, sorted((p, v) for p, values in new.items() for v in values)


def iso(milliseconds):
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat()


def pipeline(cluster, group, topic, seen, client_library, **topic_options):
    options = producer_options(cluster.bootstrap_servers, group, [topic], client_library=client_library)
    options["topics"] = [{"name": topic, **topic_options}]
    return Values(
        name=f"control-{group}",
        producer={"module": (Producer, options)},
        processors={"default": {"concurrency": 2}},
        context=seen,
        shutdown_timeout=20000,
    )


def test_reset_to_a_time_then_a_run_handles_exactly_the_records_from_that_time_on(cluster, client_library):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    middle, starts, new = two_rounds(cluster, topic, 2)
    args = ["offsets", "reset", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group]
    args += ["--topic", topic, "--to-datetime", iso(middle)]

    dry = run_gkbroad(*args)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was changed" in dry.stdout
    assert cluster.committed(group, topic) == {}

    done = run_gkbroad(*args, "--execute")
    assert done.returncode == 0, done.stderr
    assert cluster.committed(group, topic) == starts, done.stdout

    shown = run_gkbroad("offsets", "show", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group)
    assert shown.returncode == 0, shown.stderr
    assert f"total lag {len(new)}" in shown.stdout

    seen = []
    run = pipeline(
        cluster, group, topic, seen, client_library, offset_reset_policy="latest"
    )  # the committed offsets decide
    run.start()
    try:
        wait_until(lambda: len(seen) >= len(new), 60, "the records after the reset point")
        time.sleep(0.5)  # anything older would arrive by now
    finally:
        assert run.stop()
    assert sorted(seen) == new


def test_reset_refuses_while_the_group_has_members_and_clamps_out_of_range_targets(cluster, client_library):
    topic, group = cluster.topic(partitions=1), cluster.group_id()
    cluster.produce(topic, 5, partitions=1)
    seen = []
    run = pipeline(cluster, group, topic, seen, client_library, offset_reset_policy="earliest")
    run.start()
    try:
        wait_until(lambda: len(seen) == 5, 60, "the pipeline to handle the records")
        refused = run_gkbroad(
            "offsets", "reset", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group,
            "--topic", topic, "--to-earliest", "--execute",
        )  # fmt: skip
    finally:
        assert run.stop()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"group {group!r} has 1 active member(s)" in refused.stderr
    assert "kafka-python" in refused.stderr or "gkbroad" in refused.stderr  # the member is named by its id
    assert cluster.committed(group, topic) == {0: 5}  # unchanged

    clamped = run_gkbroad(
        "offsets", "reset", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group,
        "--topic", f"{topic}:0", "--to-offset", "1000", "--execute",
    )  # fmt: skip
    assert clamped.returncode == 0, clamped.stderr
    assert "1000 is outside the log [0, 5]: clamped to the log end" in clamped.stdout
    back = run_gkbroad(
        "offsets", "reset", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group,
        "--topic", topic, "--shift-by", "-3", "--execute",
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert cluster.committed(group, topic) == {0: 2}


def test_a_topic_starts_from_a_timestamp_and_at_the_end_where_no_record_is_that_late(cluster, client_library):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    # The second round goes to partition 0 only: partition 1 has no record after the time.
    middle, starts, new = two_rounds(cluster, topic, 2, second=4, second_partitions=1)
    seen = []
    run = pipeline(cluster, group, topic, seen, client_library, offset_reset_policy={"timestamp": iso(middle)})
    group_stats = run.services[0].stats
    run.start()
    try:
        wait_until(lambda: len(seen) >= len(new), 60, "the records after the timestamp")
        wait_until(
            lambda: (group_stats()["partitions"].get((topic, 1)) or {}).get("position") == starts[1],
            30,
            "partition 1 to be positioned at its end",
        )
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
        producer.send(topic, value=b"later", partition=1).get(timeout=30)
        producer.close()
        wait_until(lambda: (1, b"later") in seen, 60, "the record produced after the start")
    finally:
        assert run.stop()
    assert sorted(seen) == sorted([*new, (1, b"later")])


def pipeline_file(directory, name, client, group, client_library="kafka-python"):
    path = directory / name
    path.write_text(
        textwrap.dedent(
            f"""\
            pipeline = "gkbroad:Pipeline"
            name = "from-file"
            [producer]
            module = ["gkbroad.kafka.Producer", {{ client = {client}, client_library = "{client_library}", group_name = "{group}", topics = [{{ name = "unused" }}] }}]
            """
        )
    )
    return str(path)


def test_the_commands_connect_with_the_client_section_of_a_pipeline_file(
    cluster, tmp_path, monkeypatch, client_library
):
    """A librdkafka pipeline's file too: the commands speak kafka-python, and take its settings translated."""
    secret = "s3cr3t-in-the-environment"
    monkeypatch.setenv("GKB_TEST_SECRET", secret)
    topic, group = cluster.topic(partitions=1), cluster.group_id()
    if client_library == "librdkafka":
        client = (
            f'{{ "bootstrap.servers" = "{cluster.bootstrap_servers}", "security.protocol" = "PLAINTEXT", '
            '"sasl.username" = "svc", "sasl.password" = "${GKB_TEST_SECRET}" }'
        )
        group_id = ('"group.id"', "group.id")
    else:
        client = (
            f'{{ bootstrap_servers = "{cluster.bootstrap_servers}", security_protocol = "PLAINTEXT", '
            'sasl_plain_username = "svc", sasl_plain_password = "${GKB_TEST_SECRET}" }'
        )
        group_id = ("group_id", "group_id")
    config = pipeline_file(tmp_path, "pipeline.toml", client, group, client_library)

    produced = run_gkbroad("produce", "--config", config, "--topic", topic, "--count", "5")
    assert produced.returncode == 0, produced.stderr
    assert "produced 5 records" in produced.stdout
    reset = run_gkbroad("offsets", "reset", "--config", config, "--topic", topic, "--to-latest", "--execute")
    assert reset.returncode == 0, reset.stderr
    assert f"group {group}: reset to the log end" in reset.stdout  # the group came from the file
    lag = run_gkbroad("lag", "--config", config)
    assert lag.returncode == 0, lag.stderr
    assert "total lag 0" in lag.stdout
    assert cluster.committed(group, topic) == {0: 5}

    closed = client.replace(cluster.bootstrap_servers, f"127.0.0.1:{free_port()}")
    down = pipeline_file(tmp_path, "down.toml", closed, group, client_library)
    unreachable = run_gkbroad("lag", "--config", down, "--timeout", "2")
    assert unreachable.returncode == 1, unreachable.stdout + unreachable.stderr
    assert "gkbroad lag: reading the offsets of group" in unreachable.stderr
    bad = pipeline_file(tmp_path, "bad.toml", client[:-1] + f', {group_id[0]} = "x" }}', group, client_library)
    refused = run_gkbroad("offsets", "show", "--config", bad)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"producer.module.client.{group_id[1]}: is set by gkbroad; use the 'group_name' option" in refused.stderr
    for result in (produced, reset, lag, unreachable, refused):
        assert secret not in result.stdout + result.stderr
