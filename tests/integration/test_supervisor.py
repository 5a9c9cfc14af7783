"""`gkbroad run --processes N` against the test broker: the supervisor and its workers as a user runs them.

The pipeline below appends one line per handled record to a file (worker index,
partition, offset), so what every worker handled is read from there, and each
worker's instance_id to another; offsets are read from the broker with
kafka-python, never through the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

from tests.helpers.support import free_port, wait_until

PIPELINE_MODULE = """
import os

import gevent
import gkbroad

if os.environ.get("GKBROAD_WORKER_INDEX", "-") == os.environ.get("CRASHING_WORKER"):
    os._exit(3)  # this worker dies at every start


class Recording(gkbroad.Pipeline):
    def __init__(self, **options):
        super().__init__(**options)
        if "GKBROAD_WORKER_INDEX" in os.environ:  # a worker, not the supervisor validating the file
            with open(options["context"]["out"] + ".ids", "a") as ids:
                ids.write(f"{os.environ['GKBROAD_WORKER_INDEX']} {self.options['producer']['module'][1]['instance_id']}\\n")

    def handle_message(self, processor, message, context):
        gevent.sleep(context["delay"])
        with open(context["out"], "a") as out:
            out.write(f"{os.environ['GKBROAD_WORKER_INDEX']} {message.data.partition} {message.data.offset}\\n")
        return message
"""

# Short sessions: the bundled broker holds a group's first join for about half of it,
# and a SIGKILLed member's partitions wait for it to time out.
SESSION_MS = 3000


def write_config(directory, servers, topic, group, delay=0.02, run="", instance_id="", library="kafka-python"):
    (directory / "recording.py").write_text(PIPELINE_MODULE)
    static = f', instance_id = "{instance_id}"' if instance_id else ""
    client = f'"bootstrap.servers" = "{servers}"' if library == "librdkafka" else f'bootstrap_servers = "{servers}"'
    config = directory / "pipeline.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            pipeline = "recording:Recording"
            name = "supervised"
            context = {{ out = "{directory / "handled.txt"}", delay = {delay} }}
            shutdown_timeout = 10000

            [run]
            {run}

            [producer]
            module = ["gkbroad.kafka.Producer", {{ client = {{ {client} }}, client_library = "{library}", group_name = "{group}"{static}, topics = [{{ name = "{topic}", offset_reset_policy = "earliest" }}], receive_interval = 100, session_timeout_ms = {SESSION_MS}, heartbeat_interval_ms = 500 }}]

            [processors.default]
            concurrency = 4
            max_demand = 2
            """
        )
    )
    return config


class Supervised:
    """`gkbroad run pipeline.toml --processes N --status 127.0.0.1:PORT` in `directory`."""

    def __init__(self, directory, processes, environment=None):
        self.directory = directory
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gkbroad", "run", "pipeline.toml", "--processes", str(processes)]
            + ["--status", f"127.0.0.1:{self.port}"],
            cwd=directory,
            env={**os.environ, **(environment or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def status(self):
        """The supervisor's /status.json, or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status.json", timeout=5) as answer:
                return json.load(answer)
        except (urllib.error.URLError, OSError):
            return None

    def answer(self, path):
        """The HTTP status of the supervisor's `path` (/healthz, /readyz), None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def handled(self):
        """[(worker index, partition, offset)] in the order they were handled."""
        path = self.directory / "handled.txt"
        if not path.exists():
            return []
        return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]

    def instance_ids(self):
        """{worker index: the instance_id its pipeline was built with}."""
        path = self.directory / "handled.txt.ids"
        rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        return {int(index): instance_id for index, instance_id in rows}

    def stop(self, timeout=60):
        """SIGTERM, then (exit code, everything it printed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout=60):
        try:
            output, _ = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        return self.process.returncode, output


def first(produce, what, timeout=60, seen=None):
    """The first truthy value `produce()` returns, polling."""
    found = []
    wait_until(lambda: found.append(produce()) or found[-1], timeout, what, interval=0.2, seen=seen)
    return found[-1]


def owned(status):
    """{worker index: set of partitions} from the supervisor's status."""
    return {w["index"]: {int(name.rsplit("-", 1)[1]) for name in w["partitions"]} for w in status["workers"]}


def test_two_workers_split_every_partition_and_sigterm_commits_all_they_handled(cluster, tmp_path, client_library):
    topic, group = cluster.topic(partitions=4), cluster.group_id()
    cluster.produce(topic, 400, partitions=4)
    write_config(tmp_path, cluster.bootstrap_servers, topic, group, delay=0.05, library=client_library)
    run = Supervised(tmp_path, 2)
    try:
        status = first(
            lambda: (s := run.status()) and all(owned(s).values()) and s,
            "both workers to own partitions",
            seen=run.status,
        )
        shares = owned(status)
        assert set().union(*shares.values()) == {0, 1, 2, 3} and not shares[0] & shares[1], shares
        pids = [w["pid"] for w in status["workers"]]
        assert None not in pids and len(set(pids)) == 2 and status["pid"] not in pids
        wait_until(
            lambda: {row[0] for row in run.handled()} == {0, 1}, 60, "both workers to handle records",
            seen=lambda: (run.handled()[-3:], run.status()),
        )  # fmt: skip
        assert run.answer("/healthz") == 200, run.status()
        # Both members in a stable generation, their commits accepted: the stop is then the only event.
        wait_until(
            lambda: run.answer("/readyz") == 200 and len(cluster.committed(group, topic)) == 4, 60,
            "a stable group and a commit of every partition", interval=0.2, seen=run.status,
        )  # fmt: skip
        code, output = run.stop()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 0, output
    handled = run.handled()
    assert len(handled) < 400, "SIGTERM came after everything was handled; the test proves nothing"
    by_partition = {}
    for worker, partition, offset in handled:
        by_partition.setdefault(partition, []).append((worker, offset))
    committed = cluster.committed(group, topic)
    for partition, rows in by_partition.items():
        assert len({worker for worker, _ in rows}) == 1, f"partition {partition} handled by two workers: {rows}"
        offsets = [offset for _, offset in rows]
        # Handled in order from 0, and exactly what was handled is committed.
        assert offsets == list(range(len(offsets))), (partition, offsets)
        assert committed.get(partition) == len(offsets), (partition, committed, output)
    assert "every worker stopped cleanly" in output


def test_a_killed_worker_is_started_again_and_no_record_is_lost(cluster, tmp_path, client_library):
    topic, group = cluster.topic(partitions=4), cluster.group_id()
    cluster.produce(topic, 240, partitions=4)
    ends = cluster.end_offsets(topic, 4)
    write_config(tmp_path, cluster.bootstrap_servers, topic, group, run="restart_backoff = 200", library=client_library)
    run = Supervised(tmp_path, 2)
    try:
        wait_until(lambda: len({row[0] for row in run.handled()}) == 2, 60, "both workers to handle records")
        victim = run.status()["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)

        def restarted():
            status = run.status()
            worker = status and status["workers"][0]
            return worker and worker["restarts"] == 1 and worker["pid"] != victim and worker["state"] == "running"

        wait_until(restarted, 60, "worker 0 to be started again", interval=0.2, seen=run.status)
        wait_until(
            lambda: cluster.committed(group, topic) == ends, 90, "every record committed", interval=0.5,
            seen=lambda: (cluster.committed(group, topic), ends),
        )  # fmt: skip
        code, output = run.stop()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 0, output
    seen = {(partition, offset) for _, partition, offset in run.handled()}
    assert seen == {(p, o) for p, end in ends.items() for o in range(end)}, "a record was never handled"
    assert f"worker 0 (pid {victim}) was killed by SIGKILL" in output


def test_each_worker_is_a_static_member_of_its_own(cluster, tmp_path):
    """`<instance_id>-<index>`. Only the ids are checked: the bundled broker's static membership is
    not what is tested (it can keep refusing a static member's commits while the group settles)."""
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    write_config(tmp_path, cluster.bootstrap_servers, topic, group, instance_id="orders")
    run = Supervised(tmp_path, 2)
    try:
        wait_until(lambda: len(run.instance_ids()) == 2, 60, "both workers to build their pipeline", interval=0.2)
    finally:
        run.stop()
    assert run.instance_ids() == {0: "orders-0", 1: "orders-1"}


def test_a_worker_that_keeps_dying_stops_the_supervisor_with_exit_1(cluster, tmp_path):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    write_config(tmp_path, cluster.bootstrap_servers, topic, group, run="max_restarts = 2\nrestart_backoff = 100")
    run = Supervised(tmp_path, 2, {"CRASHING_WORKER": "1"})
    code, output = run.finish(timeout=90)
    assert code == 1, output
    assert output.count("worker 1 (pid") >= 3, output  # started three times: the first start and two restarts
    assert "exited with code 3" in output and "it keeps dying, so every worker is stopped" in output
    assert "[worker 0] gkbroad.pipeline: [supervised] stopped" in output, "worker 0 was stopped, not left running"


def test_a_configuration_error_found_by_the_workers_stops_every_worker_with_exit_2(cluster, tmp_path):
    """The supervisor validates before it starts a worker; a file changed since is caught by the workers."""
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    config = write_config(tmp_path, cluster.bootstrap_servers, topic, group)
    # Only a worker has GKBROAD_WORKER_INDEX set, so only the workers look for module recording0/recording1.
    config.write_text(config.read_text().replace('"recording:', '"recording${GKBROAD_WORKER_INDEX:-}:'))
    code, output = Supervised(tmp_path, 2).finish(timeout=90)
    assert code == 2, output
    assert "its configuration is invalid" in output
    assert "restarting" not in output and "starting it again" not in output
