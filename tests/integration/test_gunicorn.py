"""examples/flask_app.py under ``gunicorn -k gevent -w 2`` with examples/gunicorn.conf.py.

Each worker runs its own pipeline, one member of the group each: together their
assignments cover every partition, once. SIGTERM to the master stops both
workers gracefully with every record committed. --preload is refused with a
message that says what to change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.support import free_port, wait_until
from tests.helpers.web_support import EXAMPLES, example_env, get_json, order_values, stop_process

PARTITIONS = 6
RECORDS = 3000
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


def start_gunicorn(env, port, log_path, *extra, config="gunicorn.conf.py"):
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [GUNICORN, "-c", config, "--bind", f"127.0.0.1:{port}", *extra, "flask_app:app"],
            cwd=EXAMPLES,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.long
def test_two_gevent_workers_share_the_partitions_and_sigterm_commits(cluster, tmp_path):
    topic = cluster.topic(PARTITIONS, prefix="gunicorn")
    group = cluster.group_id("gunicorn")
    values = order_values(RECORDS)
    cluster.produce(topic, RECORDS, PARTITIONS, value=lambda i: values[i])
    ends = cluster.end_offsets(topic, PARTITIONS)
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(example_env(cluster.bootstrap_servers, topic, group), port, log_path)
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
