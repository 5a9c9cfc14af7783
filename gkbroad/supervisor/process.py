"""One worker as the supervisor sees it: its slot (index), its current process, what became of the last one.

A worker is started as a fresh interpreter (``python -m gkbroad run ...``,
fork and exec), never forked from the supervisor, whose gevent-patched state a
child must not inherit. It runs in a process group of its own, so that a
Ctrl-C in a terminal reaches the supervisor alone, which passes the stop on
over each worker's channel (see channel.py for why not as a signal). Its
standard input is empty: a process group in the background of a terminal that
reads from it is stopped by the terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from typing import Any

import gevent

from ..observability.worker import WORKER_COUNT_ENV, WORKER_INDEX_ENV
from .channel import SUPERVISOR_FD_ENV, channel_pair, messages, send
from .restarts import RestartPolicy

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """Worker `index` of `count`: `command` run again each time it has to be started.

    `state` is "starting" (its pipeline not started yet), "running" (its status port is
    known), "restarting" (dead, waiting for its next start), "stopping" or "exited".
    """

    def __init__(self, index: int, count: int, command: list[str], policy: RestartPolicy):
        self.index = index
        self.count = count
        self.command = command
        self.policy = policy
        self.process: subprocess.Popen[bytes] | None = None
        self.state = "starting"
        self.status_port: int | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.last_exit: str | None = None
        self._reader: gevent.Greenlet[..., Any] | None = None
        self._channel: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def start(self) -> None:
        """Start a new process for this slot; OSError when the interpreter cannot be started."""
        ours, theirs = channel_pair()
        environment = {
            **os.environ,
            WORKER_INDEX_ENV: str(self.index),
            WORKER_COUNT_ENV: str(self.count),
            SUPERVISOR_FD_ENV: str(theirs.fileno()),
        }
        try:
            self.process = subprocess.Popen(self.command, env=environment, pass_fds=(theirs.fileno(),), process_group=0)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.state, self.status_port, self.started_at = "starting", None, time.monotonic()
        self._channel = ours
        self._reader = gevent.spawn(self._read_announcements, ours)
        self._reader.name = f"supervisor.worker-{self.index}.channel"

    def wait(self) -> int:
        """Wait for the current process to end; its return code (negative: killed by that signal)."""
        assert self.process is not None, "start() first"
        code = self.process.wait()
        if self._reader is not None:
            self._reader.join()  # the channel closes with the process
        self.status_port = None
        return code

    def order(self, order: str) -> None:
        """Send `order` (channel.STOP or channel.ABORT) to the current process if it still runs."""
        if self.alive and self._channel is not None:
            with contextlib.suppress(OSError):  # it is exiting: its end of the channel is closed
                send(self._channel, {"order": order})

    def signal(self, signum: int) -> None:
        """Send `signum` to the current process if it still runs."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
                process.send_signal(signum)

    def ran_for(self) -> float:
        return time.monotonic() - self.started_at

    def describe(self) -> str:
        return f"worker {self.index}" + (f" (pid {self.pid})" if self.pid is not None else "")

    def _read_announcements(self, channel: socket.socket) -> None:
        try:
            for message in messages(channel):
                port = message.get("status_port")
                if isinstance(port, int):
                    self.status_port = port
                    if self.state == "starting":
                        self.state = "running"
        finally:
            channel.close()
