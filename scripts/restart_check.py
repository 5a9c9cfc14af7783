"""Restart two members of one group, again and again, and count the restarts
after which the partitions were assigned.

    .venv/bin/python scripts/restart_check.py --restarts 10              # two `gkbroad run` processes
    .venv/bin/python scripts/restart_check.py --restarts 10 --gunicorn   # the gunicorn recipe, -w 2

Starts the bundled broker on a free 127.0.0.1 port, produces to a 4-partition
topic, then per restart: starts the members in one group (two `gkbroad run
examples/orders.toml --status ...` processes, or `gunicorn -c gunicorn.conf.py
flask_app:app` in examples/ with its two workers), waits (at most --wait
seconds) until their status.json pages show all 4 partitions held, notes how
long that took and what /healthz answered, and stops them with SIGTERM. This
is the restart stall of docs/guides/production.md ("The bundled broker").
Needs the broker extra (and gunicorn and Flask for --gunicorn). Prints one line
per restart and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Held:
    """Partitions held per member pid, from the status.json pages at ``urls``
    (under gunicorn one URL answers from whichever worker took the request)."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.by_pid: dict[int, int] = {}

    def total(self) -> int:
        for url in self.urls:
            code, body = get(url)
            if code == 200:
                status = json.loads(body)
                self.by_pid[status["pid"]] = len(status["partitions"])
        return sum(self.by_pid.values())


def start_broker(port: int) -> subprocess.Popen:
    broker = subprocess.Popen(
        [sys.executable, "-m", "gkbroad", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    broker.stdout.readline()  # its address: it is up
    return broker


def start_members(env: dict, gunicorn: bool) -> tuple[list[subprocess.Popen], list[str]]:
    """The member processes of one restart and their status.json and healthz URLs' common prefixes."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    if gunicorn:
        port = free_port()
        command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--bind"]
        master = subprocess.Popen([*command, f"127.0.0.1:{port}", "flask_app:app"], cwd=ROOT / "examples", **quiet)
        return [master], [f"http://127.0.0.1:{port}/_gkbroad/"]
    ports = [free_port(), free_port()]
    members = [
        subprocess.Popen(
            [sys.executable, "-m", "gkbroad", "run", "examples/orders.toml", "--status", f"127.0.0.1:{port}"],
            cwd=ROOT,
            **quiet,
        )
        for port in ports
    ]
    return members, [f"http://127.0.0.1:{port}/" for port in ports]


def one_restart(env: dict, gunicorn: bool, wait: float) -> tuple[float | None, list[int]]:
    """Start the members, wait for the 4 partitions; (seconds or None, /healthz codes at the end)."""
    members, prefixes = start_members(env, gunicorn)
    held = Held([prefix + "status.json" for prefix in prefixes])
    started, took = time.monotonic(), None
    try:
        while time.monotonic() - started < wait:
            if held.total() == PARTITIONS:
                took = time.monotonic() - started
                break
            time.sleep(0.5)
        health = [get(prefix + "healthz")[0] for prefix in prefixes]
    finally:
        for member in members:
            member.send_signal(signal.SIGTERM)
        for member in members:
            try:
                member.wait(40)
            except subprocess.TimeoutExpired:
                member.kill()
                member.wait()
    return took, health


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=10, choices=range(1, 21), metavar="1..20")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the partitions per restart")
    parser.add_argument("--gunicorn", action="store_true", help="restart the gunicorn recipe instead of gkbroad run")
    args = parser.parse_args()
    port = free_port()
    broker = start_broker(port)
    bootstrap = f"127.0.0.1:{port}"
    # What examples/orders.toml and examples/orders_service.py (the web examples) read.
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ORDERS_TOPIC": "restart-orders",
        "ORDERS_GROUP": "restart-group",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "gkbroad", "produce", "--bootstrap-servers", bootstrap, "--topic"]
            + ["restart-orders", "--partitions", str(PARTITIONS), "--count", "200"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        assigned = 0
        for restart in range(1, args.restarts + 1):
            took, health = one_restart(env, args.gunicorn, args.wait)
            assigned += took is not None
            outcome = f"assigned after {took:.1f} s" if took is not None else f"no assignment in {args.wait:.0f} s"
            print(f"restart {restart}: {outcome}; /healthz {health}", flush=True)
        print(f"{assigned} of {args.restarts} restarts got their {PARTITIONS} partitions")
        return 0
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    sys.exit(main())
