"""`gkbroad run --processes N` without Kafka: the restart rules, what differs between workers,
the [run] table, and the supervisor with real worker processes running a DummyProducer pipeline
(its status page over both workers, their statsd names, the second signal).

The Kafka side (partitions split, a SIGKILLed worker, commits on SIGTERM, a crash loop) is
in tests/integration/test_supervisor.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from gkbroad.cli.commands import build_parser
from gkbroad.config.toml import ConfigProblems, read_config
from gkbroad.errors import ConfigError
from gkbroad.supervisor import WorkerLink, worker_options
from gkbroad.supervisor.restarts import MAX_BACKOFF, RestartPolicy, exit_reason
from tests.helpers.support import free_port, wait_until

# Patch-neutral (the supervisor and its workers are child processes, which patch themselves as
# `gkbroad run` does): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

# -- restart rules -----------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_each_death_within_the_window_doubles_the_wait_until_one_too_many_is_a_crash_loop():
    clock = Clock()
    policy = RestartPolicy(max_restarts=3, window=60.0, backoff=0.5, clock=clock)
    waits = []
    for _ in range(3):
        waits.append(policy.after_death())
        clock.now += 1
    assert waits == [0.5, 1.0, 2.0]
    assert policy.after_death() is None, "a fourth death within 60 s: max_restarts 3 exceeded"


def test_deaths_older_than_the_window_no_longer_count_and_the_wait_is_capped():
    clock = Clock()
    policy = RestartPolicy(max_restarts=3, window=10.0, backoff=20.0, clock=clock)
    assert policy.after_death() == 20.0
    assert policy.after_death() == MAX_BACKOFF
    clock.now += 10.5
    assert policy.after_death() == 20.0, "the two earlier deaths fell out of the window"
    assert policy.deaths_in_window == 1
    assert RestartPolicy(max_restarts=0, window=10.0, backoff=1.0).after_death() is None


def test_exit_reason_names_the_code_or_the_signal():
    assert exit_reason(0) == "exited with code 0"
    assert exit_reason(3) == "exited with code 3"
    assert exit_reason(-signal.SIGKILL) == "was killed by SIGKILL"


# -- what differs between workers ------------------------------------------------------


def test_a_static_members_instance_id_gets_the_worker_index_and_nothing_else_changes():
    options = {"name": "o", "producer": {"concurrency": 2, "module": ("gkbroad.kafka.Producer", {"instance_id": "a"})}}
    mine = worker_options(options, 3)
    assert mine["producer"]["module"] == ("gkbroad.kafka.Producer", {"instance_id": "a-3"})
    assert mine["producer"]["concurrency"] == 2 and mine["name"] == "o"
    assert options["producer"]["module"][1] == {"instance_id": "a"}, "the original is left alone"
    for untouched in (
        {"name": "o", "producer": {"module": ("gkbroad.kafka.Producer", {"group_name": "g"})}},
        {"name": "o", "producer": {"module": "gkbroad.testing:DummyProducer"}},
        {"name": "o", "producer": {"module": ("p", {"instance_id": 7})}},  # the schema refuses it, not this
        {"name": "o"},
    ):
        assert worker_options(untouched, 1) == untouched


def test_no_worker_link_outside_a_supervisor_and_a_clear_error_for_a_half_set_environment(monkeypatch):
    for name in ("GKBROAD_WORKER_INDEX", "GKBROAD_WORKER_COUNT", "GKBROAD_SUPERVISOR_FD"):
        monkeypatch.delenv(name, raising=False)
    assert WorkerLink.from_environment() is None
    monkeypatch.setenv("GKBROAD_WORKER_INDEX", "1")
    with pytest.raises(ConfigError, match="GKBROAD_WORKER_INDEX=1 makes this process a worker"):
        WorkerLink.from_environment()
    monkeypatch.setenv("GKBROAD_WORKER_INDEX", "one")
    with pytest.raises(ConfigError, match="GKBROAD_WORKER_INDEX: expected an integer >= 0"):
        WorkerLink.from_environment()


# -- the [run] table -------------------------------------------------------------------

BASE = 'pipeline = "x:Y"\nname = "n"\n[producer]\nmodule = "gkbroad.testing:DummyProducer"\n'


def test_the_run_table_is_validated_defaulted_and_kept_out_of_the_pipeline_options(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BASE + "[run]\nprocesses = 3\n")
    config = read_config(str(path))
    assert config.run == {"processes": 3, "max_restarts": 5, "restart_window": 60000, "restart_backoff": 1000}
    assert "run" not in config.options
    path.write_text(BASE)
    assert read_config(str(path)).run["processes"] == 1
    path.write_text(BASE + "[run]\nprocesses = 0\nrestarts = 2\n")
    with pytest.raises(ConfigProblems) as problems:
        read_config(str(path))
    assert problems.value.problems == [
        "run.processes: must be a positive integer, got 0",
        "run.restarts: unknown option (known options: max_restarts, processes, restart_backoff, restart_window), got 2",
    ]


def test_processes_must_be_positive_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "c.toml", "--processes", "0"])
    assert exited.value.code == 2
    assert "--processes: expected a positive integer, got '0'" in capsys.readouterr().err


def test_a_bad_configuration_exits_2_once_before_any_worker_starts(tmp_path):
    (tmp_path / "c.toml").write_text(BASE.replace('name = "n"', 'name = ""') + "[processors.default]\n")
    done = subprocess.run(
        [sys.executable, "-m", "gkbroad", "run", "c.toml", "--processes", "4", "--pipeline", "gkbroad:Pipeline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("name: must be a non-empty string") == 1, done.stderr
    assert "started" not in done.stderr


# -- the supervisor with real workers ----------------------------------------------------------

PIPELINE_MODULE = '''
import os

import gevent
import gkbroad
from gkbroad import testing


class Holding(gkbroad.Pipeline):
    """With context["hold"], sends itself one message at start whose handler holds it for a minute."""

    def __init__(self, **options):
        super().__init__(**options)
        self.hooks.add(self)

    def after_pipeline_start(self, pipeline):
        if self.options["context"]["hold"]:
            testing.test_message(self, "held")

    def handle_message(self, processor, message, context):
        open(os.path.join(context["dir"], "holding." + os.environ["GKBROAD_WORKER_INDEX"]), "w").close()
        gevent.sleep(60)
        return message
'''


def write_config(directory, hold=False, statsd_port=None, processes=2, prometheus=False):
    (directory / "holding.py").write_text(PIPELINE_MODULE)
    metrics = f'metrics = {{ statsd = {{ port = {statsd_port}, prefix = "t", interval = 1 }} }}' if statsd_port else ""
    if prometheus:
        metrics = "metrics = { prometheus = { interval = 1 } }"
    (directory / "holding.toml").write_text(
        textwrap.dedent(
            f"""\
            pipeline = "holding:Holding"
            name = "held"
            context = {{ dir = "{directory}", hold = {str(hold).lower()} }}
            shutdown_timeout = 60000
            {metrics}

            [run]
            processes = {processes}
            restart_backoff = 100

            [producer]
            module = "gkbroad.testing:DummyProducer"

            [processors.default]
            concurrency = 1
            """
        )
    )


def start(directory, *arguments, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "gkbroad", "run", "holding.toml", *arguments],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def get(port, path):
    """(HTTP status, body) of the supervisor's status app; (None, None) while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return None, None


def finish(process, timeout=60):
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, output


def test_one_status_page_shows_every_worker_and_healthz_fails_while_one_is_missing(tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    write_config(tmp_path, statsd_port=listener.getsockname()[1])
    port = free_port()
    process = start(tmp_path, "--status", f"127.0.0.1:{port}")
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 60, "both workers healthy", interval=0.2)
        status = json.loads(get(port, "/status.json")[1])
        assert status["processes"] == 2 and status["healthy"] and status["ready"]
        workers = status["workers"]
        assert [w["index"] for w in workers] == [0, 1]
        assert all(w["state"] == "running" and w["status"]["pid"] == w["pid"] for w in workers)
        assert len({status["pid"], workers[0]["pid"], workers[1]["pid"]}) == 3
        page = get(port, "/")[1]
        assert "worker 0 &mdash; pid" in page and "worker 1 &mdash; pid" in page

        names = set()
        deadline = time.monotonic() + 10
        while not {"t.held.worker.0.in_flight", "t.held.worker.1.in_flight"} <= names and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                names |= {line.split(":")[0] for line in listener.recv(65536).decode().splitlines()}
        assert {"t.held.worker.0.in_flight", "t.held.worker.1.in_flight"} <= names, names

        os.kill(workers[1]["pid"], signal.SIGKILL)
        wait_until(lambda: get(port, "/healthz")[0] == 503, 30, "/healthz to fail", interval=0.1)
        assert "worker 1 (pid" in get(port, "/healthz")[1]
        wait_until(lambda: get(port, "/healthz")[0] == 200, 60, "worker 1 to be back", interval=0.2)
        assert json.loads(get(port, "/status.json")[1])["workers"][1]["restarts"] == 1
        process.send_signal(signal.SIGTERM)
        code, output = finish(process)
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
    assert code == 0, output
    assert f"worker 1 (pid {workers[1]['pid']}) was killed by SIGKILL" in output


def test_the_supervisors_metrics_sum_the_live_workers_and_forget_a_dead_one(tmp_path):
    parser = pytest.importorskip("prometheus_client.parser")
    write_config(tmp_path, hold=True, prometheus=True)
    (tmp_path / "multiproc").mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc")}
    port = free_port()
    process = start(tmp_path, "--status", f"127.0.0.1:{port}", env=env)

    def in_flight():
        code, body = get(port, "/metrics")
        if code != 200:
            return None
        families = {family.name: family for family in parser.text_string_to_metric_families(body)}
        family = families.get("gkbroad_messages_in_flight")
        return sum(sample.value for sample in family.samples) if family else None

    try:
        wait_until(lambda: in_flight() == 2, 60, "both workers' held message in /metrics", interval=0.2)
        pid = json.loads(get(port, "/status.json")[1])["workers"][1]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: (
                json.loads(get(port, "/status.json")[1])["workers"][1]["restarts"] == 1
                and get(port, "/healthz")[0] == 200
            ),
            60,
            "worker 1 to be back",
            interval=0.2,
        )
        time.sleep(2.5)  # a few refreshes of the new worker's gauges
        # The dead worker's gauge is gone: one held message per live worker, not three.
        assert in_flight() == 2
        process.send_signal(signal.SIGTERM)
        # The held handlers would outlast the drain: a second signal aborts it, once the supervisor
        # handled the first (two signals sent back to back arrive as one, and the drain then ran
        # to shutdown_timeout: 45 s of the suite's time).
        wait_until(lambda: json.loads(get(port, "/status.json")[1])["state"] == "stopping", 30, "the stop to begin")
        process.send_signal(signal.SIGTERM)
        code, output = finish(process)
        assert "received again: telling every worker to abort its drain" in output, output
    finally:
        if process.poll() is None:
            process.kill()


def test_a_second_signal_makes_every_worker_abort_its_drain(tmp_path):
    write_config(tmp_path, hold=True)
    process = start(tmp_path)
    try:
        wait_until(
            lambda: (tmp_path / "holding.0").exists() and (tmp_path / "holding.1").exists(),
            60,
            "both workers to hold a message",
            interval=0.1,
        )
        process.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert process.poll() is None, "the workers drain: their held messages take a minute"
        signalled = time.monotonic()
        process.send_signal(signal.SIGINT)
        code, output = finish(process, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - signalled < 20, "the second signal did not abort the drains"
    assert code == 1, output
    assert "SIGINT received again: telling every worker to abort its drain" in output
    assert output.count("second signal (SIGTERM): aborting the drain") == 2
    assert "not every worker stopped cleanly: worker 0" in output


def test_processes_1_on_the_command_line_runs_the_pipeline_in_this_process_whatever_the_file_says(tmp_path):
    write_config(tmp_path, processes=3)
    port = free_port()
    process = start(tmp_path, "--processes", "1", "--status", f"127.0.0.1:{port}")
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 60, "the pipeline to run", interval=0.2)
        status = json.loads(get(port, "/status.json")[1])
        process.send_signal(signal.SIGTERM)
        code, output = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, output
    assert "workers" not in status and status["pid"] == process.pid
    assert "supervisor" not in output


def running(pid):
    """Whether `pid` runs (a zombie nobody reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return False


def test_workers_stop_when_their_supervisor_is_killed(tmp_path):
    write_config(tmp_path)
    port = free_port()
    process = start(tmp_path, "--status", f"127.0.0.1:{port}")
    pids = []
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 60, "both workers healthy", interval=0.2)
        pids = [worker["pid"] for worker in json.loads(get(port, "/status.json")[1])["workers"]]
        process.kill()
        _, output = finish(process)
        wait_until(lambda: not any(running(pid) for pid in pids), 30, "the workers to stop", interval=0.1)
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    assert output.count("the supervisor (pid") == 2 and "stopping as on SIGTERM" in output
