"""The blocks of README.md and docs/**/*.md that need a broker, run against the test broker as a user would.

The broker address is rewritten to the test broker's, each topic a block names is
replaced by a fresh one holding sample orders, and each consumer group by a fresh
one. A block that runs until stopped is started in its own process, sent SIGTERM
once it is ready, and must exit 0.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers.support import free_port, wait_until
from tests.readme_snippets import all_snippets, write_workspace

SNIPPETS = all_snippets()
BROKER = [s for s in SNIPPETS if s.broker]
READY_TIMEOUT = 180
"""The bundled broker holds a new group's first JoinGroup for half the session timeout (22.5 s with
kafka-python's default of 45 s, which orders.py keeps) and a SyncGroup it refuses for 0.8 of one (36 s),
after which a stand-in join and a second join follow (the restart stall, docs/guides/production.md):
one refused SyncGroup takes the first assignment to two or three minutes (the guide's estimate), past
the 90 s this was. One run of orders.py in a full suite on a loaded machine took 60 s, as one refused
SyncGroup would; its 13 other runs, most beside busy processes, took 27-34 s (joins of 23-24 s)."""
ORDERS = 50
_GROUP_NAME = re.compile(r'"group_name": "([^"]+)"')


def _sample_order(i):
    return json.dumps({"id": i, "customer": f"c{i % 7}", "amount": 0 if i % 10 == 0 else i}).encode()


def _ready(snippet, directory, port):
    kind, _, target = snippet.ready.partition(":")
    if kind == "file":
        path = directory / target
        return path.exists() and path.stat().st_size > 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _command(snippet, port):
    if snippet.run == "gunicorn":
        gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
        return [gunicorn, "-c", snippet.file, "--bind", f"127.0.0.1:{port}", snippet.app]
    if snippet.run == "pytest":
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", snippet.file]
    return [sys.executable, snippet.file]


def _param(snippet):
    """A block that joins a group with the default session waits ~22 s for its first assignment:
    marked long, so that a parallel run starts it early instead of ending on it."""
    default_session = "group_name" in snippet.code and "session_timeout_ms" not in snippet.code
    return pytest.param(snippet, marks=[pytest.mark.long(seconds=30)] if default_session else [])


@pytest.mark.parametrize("snippet", [_param(s) for s in BROKER], ids=str)
def test_broker_block_runs(snippet, cluster, tmp_path):
    rewrite = {"localhost:9092": cluster.bootstrap_servers, "127.0.0.1:9092": cluster.bootstrap_servers}
    for name in snippet.topics:
        topic = cluster.topic(4, prefix=f"readme-{name}")
        cluster.produce(topic, ORDERS, value=_sample_order)
        rewrite[f'"name": "{name}"'] = f'"name": "{topic}"'
    for group in sorted({g for s in SNIPPETS for g in _GROUP_NAME.findall(s.code)}):
        # A group of its own for each test: on the bundled broker, joining a group that an earlier
        # block's members had just left once took past READY_TIMEOUT (its JoinGroup timed out).
        rewrite[f'"group_name": "{group}"'] = f'"group_name": "{cluster.group_id(prefix=f"readme-{group}")}"'
    write_workspace(tmp_path, SNIPPETS, rewrite)
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("GKBROAD_GEVENT_PATCH", None)
    log_path = tmp_path / "output.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(_command(snippet, port), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if snippet.run in ("sigterm", "gunicorn"):
            try:
                wait_until(
                    lambda: process.poll() is not None or _ready(snippet, tmp_path, port), READY_TIMEOUT, "ready"
                )
            except AssertionError:
                pytest.fail(f"{snippet} not ready within {READY_TIMEOUT}s:\n{log_path.read_text()}")
            assert process.poll() is None, f"{snippet} exited early:\n{log_path.read_text()}"
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() == 0, f"{snippet} exited {process.poll()}:\n{log_path.read_text()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
