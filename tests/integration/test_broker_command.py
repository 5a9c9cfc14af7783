"""`gkbroad broker --port N` when the port is not free: a clear error, never a false "listening"."""

from __future__ import annotations

import socket
import subprocess
import sys

from gkbroad.testing.broker import LocalBroker


def run_broker_command(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gkbroad", "broker", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_another_broker_answers_on_is_refused():
    with LocalBroker() as other:
        result = run_broker_command(other.port)
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert f"port {other.port} on 127.0.0.1 is already in use" in result.stderr


def test_a_port_held_by_any_other_listener_is_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_broker_command(port)
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
