"""Helpers every test may use, unit and integration alike: waiting for a
condition while other greenlets run, a free loopback port, and starting one of
the helper modules (tests/helpers/*.py) as its own Python process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gevent

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: on sys.path, `tests.helpers...` imports from it."""


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 5.0,
    what: str = "the condition",
    interval: float = 0.01,
    seen: Callable[[], object] | None = None,
) -> float:
    """Poll `predicate` every `interval` seconds (yielding to other greenlets) until it
    is true; returns the seconds it took, fails the test after `timeout`, saying
    what `seen()` returns then (the counts or offsets that fell short).

    A predicate that reads the broker or parses journals should poll at a
    slower `interval`: on a loaded machine the polling itself takes the CPU
    the code under test needs.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            found = f"; saw {seen()}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{found}")
        gevent.sleep(interval)
    return time.monotonic() - start


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def root_on_pythonpath(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the repository root first on PYTHONPATH,
    so a child process can import `tests.helpers` whatever its working directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def start_module(module: str, *args: str) -> subprocess.Popen:
    """`python -m module args...` as a child process (this interpreter, the root on PYTHONPATH)."""
    return subprocess.Popen([sys.executable, "-m", module, *args], env=root_on_pythonpath())
