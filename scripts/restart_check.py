"""Restart two `gkbroad run` members of one group, again and again, and count
the restarts after which the partitions were assigned.

    .venv/bin/python scripts/restart_check.py --restarts 10

Starts the bundled broker on a free 127.0.0.1 port, produces to a 4-partition
topic, then per restart: starts two `gkbroad run examples/orders.toml --status
...` processes in one group, waits (at most --wait seconds) until their
status.json pages show all 4 partitions held, notes how long that took and
what /healthz answered, and stops both with SIGTERM. This is the restart of
docs/guides/production.md ("Restarting every member at once").
Needs the broker extra. Prints one line per restart and a summary.
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


def held(status_port: int) -> int:
    code, body = get(f"http://127.0.0.1:{status_port}/status.json")
    return len(json.loads(body)["partitions"]) if code == 200 else 0


def start_broker(port: int) -> subprocess.Popen:
    broker = subprocess.Popen(
        [sys.executable, "-m", "gkbroad", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    broker.stdout.readline()  # its address: it is up
    return broker


def one_restart(env: dict, status_ports: list[int], wait: float) -> tuple[float | None, list[int]]:
    """Start the two members, wait for the 4 partitions; (seconds or None, /healthz codes at the end)."""
    members = [
        subprocess.Popen(
            [sys.executable, "-m", "gkbroad", "run", "examples/orders.toml", "--status", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in status_ports
    ]
    started, took = time.monotonic(), None
    try:
        while time.monotonic() - started < wait:
            if sum(held(port) for port in status_ports) == PARTITIONS:
                took = time.monotonic() - started
                break
            time.sleep(0.5)
        health = [get(f"http://127.0.0.1:{port}/healthz")[0] for port in status_ports]
    finally:
        for member in members:
            member.send_signal(signal.SIGTERM)
        for member in members:
            try:
                member.wait(30)
            except subprocess.TimeoutExpired:
                member.kill()
                member.wait()
    return took, health


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=10, choices=range(1, 21), metavar="1..20")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the partitions per restart")
    args = parser.parse_args()
    port = free_port()
    broker = start_broker(port)
    bootstrap = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ORDERS_TOPIC": "restart-orders",
        "ORDERS_GROUP": "restart-group",
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
            took, health = one_restart(env, [free_port(), free_port()], args.wait)
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
