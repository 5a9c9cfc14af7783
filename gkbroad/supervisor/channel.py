"""The channel between the supervisor and one of its workers: a Unix socket pair.

The worker inherits its end as a file descriptor whose number is in its
``GKBROAD_SUPERVISOR_FD`` environment variable. Both sides send JSON lines: the
worker ``{"status_port": N}`` once its pipeline has started (where its private
status app listens), the supervisor its orders, ``{"order": "stop"}`` and
``{"order": "abort"}``. Each side learns from the end of the stream that the
other is gone: the supervisor, that a worker is exiting; the worker, that its
supervisor died without stopping it, so no worker outlives its supervisor.

Orders travel here rather than as signals because a worker may get its stop
signal straight from whoever stopped the supervisor too (systemd signals every
process of a service, a shell's kill may name the whole tree): a worker counts
its signals, and a second one aborts its drain, so the supervisor's order to
stop must be one the worker can recognise as the same request.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["ABORT", "STOP", "SUPERVISOR_FD_ENV", "channel_pair", "messages", "send"]

SUPERVISOR_FD_ENV = "GKBROAD_SUPERVISOR_FD"
STOP, ABORT = "stop", "abort"


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(the supervisor's end, the worker's end) of a new channel."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def send(channel: socket.socket, message: dict[str, Any]) -> None:
    """Send one message; OSError when the other end is gone."""
    channel.sendall(json.dumps(message).encode() + b"\n")


def messages(channel: socket.socket) -> Iterator[dict[str, Any]]:
    """Every message arriving on `channel`, until the other end closes it (or the channel fails)."""
    with channel.makefile("rb") as stream:
        try:
            for line in stream:
                yield json.loads(line)
        except OSError:
            return
