"""The `gkbroad` command line run as a user runs it: subprocesses against the test broker.

Offsets are set up and read with kafka-python directly (kafka_helpers, the
admin client), never through the code under test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import urllib.request

from kafka import KafkaAdminClient, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.helpers.support import free_port, wait_until

# A pipeline module the configs below name; it records every handled record in a file.
PIPELINE_MODULE = '''
import gevent
import gkbroad


class Recording(gkbroad.Pipeline):
    """Appends "partition offset" per handled record to context["out"], slowly; touches
    context["out"] + ".started" when a handler begins."""

    def handle_message(self, processor, message, context):
        open(context["out"] + ".started", "a").close()
        gevent.sleep(context["delay"])
        with open(context["out"], "a") as out:
            out.write(f"{message.data.partition} {message.data.offset}\\n")
        return message
'''


def client_table(servers, client_library):
    """The producer's ``client`` table (and ``client_library``) in TOML, in the names of ``client_library``."""
    if client_library == "librdkafka":
        return f'client = {{ "bootstrap.servers" = "{servers}" }}, client_library = "librdkafka"'
    return f'client = {{ bootstrap_servers = "{servers}" }}'


def write_config(directory, servers, topic, group, delay=0.0, extra="", client_library="kafka-python"):
    (directory / "recording.py").write_text(PIPELINE_MODULE)
    config = directory / "pipeline.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            pipeline = "recording:Recording"
            name = "cli-test"
            context = {{ out = "{directory / "handled.txt"}", delay = {delay} }}
            {extra}
            [producer]
            module = ["gkbroad.kafka.Producer", {{ {client_table(servers, client_library)}, group_name = "{group}", topics = [{{ name = "{topic}", offset_reset_policy = "earliest" }}], receive_interval = 100, session_timeout_ms = 6000, heartbeat_interval_ms = 1000 }}]

            [processors.default]
            concurrency = 4
            max_demand = 2
            """
        )
    )
    return config


def gkbroad(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "gkbroad", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start_gkbroad(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "gkbroad", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def handled(path):
    """{partition: [offsets handled]} from the Recording pipeline's file."""
    result = {}
    if path.exists():
        for line in path.read_text().splitlines():
            partition, offset = map(int, line.split())
            result.setdefault(partition, []).append(offset)
    return result


def set_committed(servers, group, topic, offsets):
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="gkbroad-tests")
    try:
        admin.alter_group_offsets(
            group, {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        )
    finally:
        admin.close()


# ------------------------------------------------------------------ run


def test_run_stops_on_sigterm_with_exit_0_and_commits_what_it_handled(cluster, tmp_path, client_library):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    cluster.produce(topic, 400, partitions=2)
    config = write_config(tmp_path, cluster.bootstrap_servers, topic, group, delay=0.02, client_library=client_library)
    out = tmp_path / "handled.txt"
    process = start_gkbroad("run", config.name, cwd=tmp_path)  # pipeline module found in the working directory
    try:
        wait_until(lambda: sum(map(len, handled(out).values())) >= 20, 60, "the pipeline to handle records")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    seen = handled(out)
    total = sum(map(len, seen.values()))
    assert total < 400, "SIGTERM came after everything was handled; the test proves nothing"
    committed = cluster.committed(group, topic)
    for partition, offsets in seen.items():
        # Handled in order from 0, and exactly what was handled is committed: nothing lost, nothing skipped.
        assert sorted(offsets) == list(range(len(offsets)))
        assert committed[partition] == len(offsets), (partition, committed, output)
    assert "stopped" in output


def test_run_exits_1_when_the_pipeline_does_not_stop_cleanly(cluster, tmp_path, client_library):
    topic, group = cluster.topic(partitions=1), cluster.group_id()
    cluster.produce(topic, 20, partitions=1)
    # Handlers take 5 s each but stop() may wait only 0.5 s: the stop cannot be clean.
    config = write_config(
        tmp_path, cluster.bootstrap_servers, topic, group, 5.0, "shutdown_timeout = 500", client_library
    )
    out = tmp_path / "handled.txt"
    process = start_gkbroad("run", config.name, cwd=tmp_path)
    try:
        wait_until((tmp_path / "handled.txt.started").exists, 60, "a handler to begin")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output
    assert "ERROR gkbroad.cli.commands: pipeline cli-test" in output
    assert not out.exists() or len(handled(out).get(0, [])) < 20


def test_run_with_a_bad_config_lists_every_problem_and_exits_2(tmp_path, bootstrap_servers):
    (tmp_path / "recording.py").write_text(PIPELINE_MODULE)
    config = tmp_path / "bad.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            pipeline = "recording:Recording"
            name = ""
            [producer]
            concurrency = 0
            module = ["gkbroad.kafka.Producer", {{ client = {{ bootstrap_servers = "{bootstrap_servers}" }}, topics = [{{ name = "t", offset_reset_policy = "sometimes" }}] }}]
            [processors.default]
            max_demand = "many"
            [batchers.default]
            batch_size = 10
            """
        )
    )
    result = gkbroad("run", config.name, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    problems = result.stderr.strip().splitlines()
    assert problems == [
        "name: must be a non-empty string, got ''",
        "processors.default.max_demand: must be a positive integer, got 'many'",
        "producer.concurrency: must be a positive integer, got 0",
        "batchers: Recording configures batchers (default) but does not define "
        "handle_batch(self, batcher, messages, batch_info, context)",
        "producer.module.group_name: missing required option",
        'producer.module.topics.0.offset_reset_policy: must be "earliest", "latest" or '
        "{timestamp = <date-time or ms since the epoch>}, got 'sometimes'",
    ], result.stderr


def test_run_serves_the_status_app_from_the_same_process(cluster, tmp_path, client_library):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    cluster.produce(topic, 50, partitions=2)
    config = write_config(tmp_path, cluster.bootstrap_servers, topic, group, client_library=client_library)
    port = free_port()
    process = start_gkbroad("run", config.name, "--status", f"127.0.0.1:{port}", cwd=tmp_path)
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(healthy, 60, "/healthz to answer 200")
        wait_until(
            lambda: cluster.committed(group, topic) == {0: 25, 1: 25}, 60, "the records to be committed", interval=0.2
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as response:
            assert topic in response.read().decode()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output


# ---------------------------------------------------------------- check


def test_check_accepts_a_valid_config_and_connect_finds_the_topic(cluster, tmp_path, client_library):
    topic = cluster.topic(partitions=1)
    config = write_config(tmp_path, cluster.bootstrap_servers, topic, cluster.group_id(), client_library=client_library)
    result = gkbroad("check", config.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{config.name}: ok (pipeline 'cli-test', recording:Recording)" in result.stdout
    result = gkbroad("check", config.name, "--connect", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        f"--connect: the brokers at {cluster.bootstrap_servers} answered; topics found: {topic!r} (1 partition(s))"
        in result.stdout
    )


def test_check_connect_reports_a_missing_topic(cluster, tmp_path, client_library):
    config = write_config(
        tmp_path, cluster.bootstrap_servers, "no-such-topic-here", cluster.group_id(), client_library=client_library
    )
    assert gkbroad("check", config.name, cwd=tmp_path).returncode == 0
    result = gkbroad("check", config.name, "--connect", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "producer.module.topics.0.name: topic 'no-such-topic-here' does not exist"


def test_check_connect_reports_brokers_that_do_not_answer(tmp_path, client_library):
    config = write_config(tmp_path, f"127.0.0.1:{free_port()}", "t", "g", client_library=client_library)
    result = gkbroad("check", config.name, "--connect", "--timeout", "2", cwd=tmp_path)
    assert result.returncode == 1, "the docs' exit code for Kafka that did not answer"
    servers = "bootstrap.servers" if client_library == "librdkafka" else "bootstrap_servers"  # the file's own name
    assert result.stderr.startswith(f"gkbroad check: producer.module.client.{servers}: describing topics at"), (
        result.stderr
    )


def test_check_lists_every_problem_with_its_path(tmp_path, bootstrap_servers):
    config = write_config(tmp_path, bootstrap_servers, "t", "g", extra="shutdown_timeout = -1\nbogus = 1")
    result = gkbroad("check", config.name, "--pipeline", "recording:Missing", cwd=tmp_path)
    assert result.returncode == 2
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 3, problems
    assert problems[0] == (
        "pipeline: cannot import 'recording:Missing' (AttributeError: module 'recording' has no attribute 'Missing')"
    )
    assert problems[1].startswith("bogus: unknown option (known options: batchers, blocking_warning_ms, context, ")
    assert problems[2] == "shutdown_timeout: must be a non-negative integer, got -1"


# ------------------------------------------------------------ lag, produce


def test_lag_reports_committed_end_and_lag_per_partition_as_json(cluster):
    topic, group = cluster.topic(partitions=3), cluster.group_id()
    cluster.produce(topic, 30, partitions=3)  # 10 per partition, in multi-record batches
    set_committed(cluster.bootstrap_servers, group, topic, {0: 4, 1: 10})  # partition 2: never committed
    result = gkbroad("lag", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "group": group,
        "partitions": [
            {"topic": topic, "partition": 0, "committed": 4, "end": 10, "lag": 6},
            {"topic": topic, "partition": 1, "committed": 10, "end": 10, "lag": 0},
            {"topic": topic, "partition": 2, "committed": None, "end": 10, "lag": 10},
        ],
        "total_lag": 16,
    }
    common = ["lag", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group, "--topic", topic]
    over = gkbroad(*common, "--max-lag", "15")
    assert over.returncode == 1
    assert "total lag 16 is above --max-lag 15" in over.stderr
    assert "total lag 16" in over.stdout  # the table is still printed
    assert gkbroad(*common, "--max-lag", "16").returncode == 0


def test_lag_of_an_unknown_group_fails_unless_a_topic_is_named(cluster):
    group = cluster.group_id()
    result = gkbroad("lag", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group)
    assert result.returncode == 1
    assert "has no committed offsets" in result.stderr
    result = gkbroad("lag", "--bootstrap-servers", cluster.bootstrap_servers, "--group", group, "--topic", "nope-x")
    assert result.returncode == 1
    assert "no such topic: nope-x" in result.stderr


def test_produce_samples_then_lag_counts_them_all(cluster):
    topic, group = cluster.group_id("produce-topic"), cluster.group_id()
    servers = cluster.bootstrap_servers
    result = gkbroad("produce", "--bootstrap-servers", servers, "--topic", topic, "--partitions", "3", "--count", "90")
    assert result.returncode == 0, result.stderr
    assert f"created topic {topic} with 3 partition(s)" in result.stderr
    assert result.stdout.startswith(f"produced 90 records to {topic} (")
    assert sum(cluster.end_offsets(topic, 3).values()) == 90
    result = gkbroad("lag", "--bootstrap-servers", servers, "--group", group, "--topic", topic, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total_lag"] == 90
    assert [row["end"] for row in report["partitions"]] == [cluster.end_offsets(topic, 3)[p] for p in range(3)]


def test_produce_a_keyed_file_sends_one_record_per_line_with_its_key(cluster, tmp_path):
    topic = cluster.topic(partitions=1)
    data = tmp_path / "records.txt"
    data.write_text("k1\tfirst\n\nk2\tsecond\n")
    servers = cluster.bootstrap_servers
    result = gkbroad("produce", "--bootstrap-servers", servers, "--topic", topic, str(data), "--keyed")
    assert result.returncode == 0, result.stderr
    assert "produced 2 records" in result.stdout
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        records = [(r.key, r.value) for r in consumer]
    finally:
        consumer.close()
    assert records == [(b"k1", b"first"), (b"k2", b"second")]
    data.write_text("no tab here\n")
    result = gkbroad("produce", "--bootstrap-servers", servers, "--topic", topic, str(data), "--keyed")
    assert result.returncode == 2
    assert "records.txt:1: expected key<TAB>value (--keyed), got 'no tab here'" in result.stderr
