"""Helpers every test may use, unit and integration alike: waiting for a
condition while other greenlets run, and a free loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition") -> float:
    """Poll `predicate` (yielding to other greenlets) until it is true; returns the
    seconds it took, fails the test after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(0.01)
    return time.monotonic() - start


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
