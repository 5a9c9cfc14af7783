"""examples/flask_app.py under ``gunicorn -k gevent -w 2`` with examples/gunicorn.conf.py.

Each worker runs its own pipeline, one member of the group each: together their
assignments cover every partition, once. SIGTERM to the master stops both
workers gracefully with every record committed, and the pipeline's stop begins
at the SIGTERM while a slow request is still in flight. --preload is refused
with a message that says what to change, and a gevent worker that cannot load
with what to install.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import gevent
import pytest

from tests.helpers.support import free_port, wait_until
from tests.helpers.web_support import EXAMPLES, example_env, get_json, order_values, stop_process

PARTITIONS = 6
RECORDS = 3000
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


def start_gunicorn(env, port, log_path, *extra, config="gunicorn.conf.py", app="flask_app:app"):
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [GUNICORN, "-c", config, "--bind", f"127.0.0.1:{port}", *extra, app],
            cwd=EXAMPLES,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.long
def test_two_gevent_workers_share_the_partitions_and_sigterm_commits(client_library, cluster, tmp_path):
    topic = cluster.topic(PARTITIONS, prefix="gunicorn")
    group = cluster.group_id("gunicorn")
    values = order_values(RECORDS)
    cluster.produce(topic, RECORDS, PARTITIONS, value=lambda i: values[i])
    ends = cluster.end_offsets(topic, PARTITIONS)
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(example_env(cluster.bootstrap_servers, topic, group, client_library), port, log_path)
    try:
        latest = {}  # worker pid -> its last status

        def both_workers_done() -> bool:
            try:
                status = get_json(f"http://127.0.0.1:{port}/_gkbroad/status.json")
            except OSError:
                return False  # not listening yet
            latest[status["pid"]] = status
            if len(latest) != 2:
                return False
            assigned = [{p["partition"] for p in s["partitions"]} for s in latest.values()]
            committed = all(p["committed"] == ends[p["partition"]] for s in latest.values() for p in s["partitions"])
            return all(assigned) and set.union(*assigned) == set(range(PARTITIONS)) and committed

        wait_until(both_workers_done, timeout=120, what="two workers covering every partition, all committed")
        first, second = ({p["partition"] for p in s["partitions"]} for s in latest.values())
        assert not first & second, f"a partition assigned to both workers: {first} and {second}"
        assert all(s["state"] == "running" for s in latest.values())

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert cluster.committed(group, topic) == ends
    finally:
        log_text = stop_process(process, log_path)
    assert log_text.count("[orders-web] stopped in worker") == 2, log_text
    assert "(not clean)" not in log_text


BAD_CONFIG = """
from gkbroad.wsgi.gunicorn import on_starting, post_worker_init, worker_exit  # noqa: F401
import kafka  # noqa: F401  (the trap: the master imports kafka before the workers patch)
worker_class = "gevent"
"""


@pytest.mark.parametrize(
    "trap, expected",
    [
        ("--preload", "run_in_worker() was called before gevent patched this process"),
        ("config imports kafka", "kafka was imported in the gunicorn master"),
    ],
)
def test_importing_kafka_in_the_master_is_refused_with_what_to_change(tmp_path, trap, expected):
    env = example_env("127.0.0.1:9", "unused", "unused")  # nothing connects: the master refuses first
    log_path = tmp_path / "gunicorn.log"
    if trap == "--preload":
        process = start_gunicorn(env, free_port(), log_path, "--preload")
    else:
        (tmp_path / "bad.conf.py").write_text(BAD_CONFIG)
        process = start_gunicorn(env, free_port(), log_path, config=str(tmp_path / "bad.conf.py"))
    try:
        started = time.monotonic()
        assert process.wait(60) != 0
        assert time.monotonic() - started < 60
    finally:
        log_text = stop_process(process, log_path)
    assert expected in log_text, log_text
    assert "remove --preload (preload_app = True)" in log_text


SLOW_SECONDS = 8
SLOW_APP = f"""
import time  # the gevent worker patched it: the sleep lets the worker's other greenlets run

from flask_app import app


@app.route("/slow")
def slow():
    time.sleep({SLOW_SECONDS})
    return "done"
"""


def test_sigterm_begins_the_stop_at_once_while_a_slow_request_is_in_flight(cluster, tmp_path):
    topic = cluster.topic(2, prefix="gunicorn-slow")
    group = cluster.group_id("gunicorn-slow")
    cluster.produce(topic, 20, 2, value=lambda i: order_values(20)[i])
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    env = example_env(cluster.bootstrap_servers, topic, group)
    env["PYTHONPATH"] = os.pathsep.join((str(tmp_path), env["PYTHONPATH"]))
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(env, port, log_path, "-w", "1", app="slow_app:app")
    try:

        def assigned() -> bool:
            try:
                return len(get_json(f"http://127.0.0.1:{port}/_gkbroad/status.json")["partitions"]) == 2
            except OSError:
                return False

        wait_until(assigned, timeout=60, what="the worker's partitions")
        answered = {}

        def slow_request():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=60) as response:
                answered["body"] = response.read()
            answered["log"] = log_path.read_text()

        request = gevent.spawn(slow_request)
        gevent.sleep(1)  # the request is in flight
        process.send_signal(signal.SIGTERM)
        request.join(SLOW_SECONDS + 10)
        assert answered.get("body") == b"done", "the request in flight was not finished"
        assert process.wait(30) == 0
    finally:
        log_text = stop_process(process, log_path)
    before_the_answer = answered.get("log", "")
    assert "told to stop: stopping the pipeline now" in before_the_answer, log_text
    assert "[orders-web] stopped" in before_the_answer, "the stop waited for the request in flight: " + log_text
    assert "left the group" in before_the_answer
    assert "[orders-web] stopped in worker" in log_text and "(not clean)" not in log_text


def test_a_gevent_worker_that_cannot_load_says_what_to_install(tmp_path):
    (tmp_path / "packaging.py").write_text("raise ImportError(\"No module named 'packaging'\")\n")
    env = example_env("127.0.0.1:9", "unused", "unused")
    env["PYTHONPATH"] = os.pathsep.join((str(tmp_path), env["PYTHONPATH"]))
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(env, free_port(), log_path)
    try:
        assert process.wait(60) != 0
    finally:
        log_text = stop_process(process, log_path)
    assert "gunicorn's gevent worker cannot load (No module named 'packaging')" in log_text, log_text
    assert "pip install 'gunicorn[gevent]'" in log_text
