"""A worker's side of ``gkbroad run --processes N``: who it is, and what it owes its supervisor.

A worker is an ordinary ``gkbroad run`` whose environment names it (see
gkbroad.observability.worker and channel). It differs from a lone run in three
ways: its options (`worker_options`: a static member's ``instance_id`` gets
the suffix ``-<index>``, so every worker is a distinct member and keeps its
identity across restarts); its status app, which it serves on a free loopback
port and announces to the supervisor once its pipeline has started (the
supervisor's own ``--status`` page gathers them); and it stops, as on SIGTERM,
when its supervisor is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

from ..errors import ConfigError
from ..observability.hook_protocols import AfterPipelineStart
from ..observability.worker import WORKER_COUNT_ENV, WORKER_INDEX_ENV, worker_count, worker_index
from ..wsgi import serve, status_app
from .channel import SUPERVISOR_FD_ENV, messages, send

__all__ = ["WorkerLink", "worker_options"]

logger = logging.getLogger(__name__)

# Workers serve their status on loopback only: the supervisor is the one to read it.
STATUS_HOST = "127.0.0.1"


def worker_options(options: dict[str, Any], index: int) -> dict[str, Any]:
    """The pipeline options (as read from TOML) of worker `index`.

    When ``producer.module`` is a ``(producer, {options})`` pair whose options set an
    ``instance_id`` string, the worker's copy ends in ``-<index>``; anything else is
    returned as it is (the option schema refuses what is malformed)."""
    producer = options.get("producer")
    if not isinstance(producer, dict):
        return options
    module = producer.get("module")
    if not (isinstance(module, (tuple, list)) and len(module) == 2 and isinstance(module[1], dict)):
        return options
    instance_id = module[1].get("instance_id")
    if not isinstance(instance_id, str):
        return options
    own = (module[0], {**module[1], "instance_id": f"{instance_id}-{index}"})
    return {**options, "producer": {**producer, "module": own}}


class WorkerLink:
    """This process as worker `index` of `count`, and its end of the channel to the supervisor."""

    def __init__(self, index: int, count: int, channel: socket.socket):
        self.index = index
        self.count = count
        self.channel = channel
        self.supervisor_pid = os.getppid()

    @classmethod
    def from_environment(cls) -> WorkerLink | None:
        """The link a supervisor set up in this process's environment; None when no supervisor started it."""
        index = worker_index()
        if index is None:
            return None
        count, descriptor = worker_count(), os.environ.get(SUPERVISOR_FD_ENV, "")
        if count is None or index >= count or not descriptor.isdigit():
            raise ConfigError(
                f"{WORKER_INDEX_ENV}={index} makes this process a worker of gkbroad run --processes, which also "
                f"sets {WORKER_COUNT_ENV} (above the index) and {SUPERVISOR_FD_ENV} (a file descriptor); got "
                f"{WORKER_COUNT_ENV}={os.environ.get(WORKER_COUNT_ENV)!r}, {SUPERVISOR_FD_ENV}={descriptor!r}. "
                f"Unset {WORKER_INDEX_ENV} to run a pipeline by hand"
            )
        try:
            channel = socket.socket(fileno=int(descriptor))
        except OSError as exc:
            raise ConfigError(f"{SUPERVISOR_FD_ENV}={descriptor}: not an open socket ({exc.strerror or exc})") from None
        return cls(index, count, channel)

    def options(self, options: dict[str, Any]) -> dict[str, Any]:
        return worker_options(options, self.index)

    def serve_status(self, pipeline: Any) -> WSGIServer:
        """Serve the pipeline's status app on a free loopback port, announced once the pipeline has started."""
        server = serve(status_app(pipeline), STATUS_HOST, 0)
        pipeline.hooks.add(_Announce(self.channel, int(server.socket.getsockname()[1])))
        return server

    def stop_with_the_supervisor(self) -> None:
        """Stop this worker, as SIGTERM would, when the supervisor's end of the channel closes."""
        gevent.spawn(self._watch_supervisor).name = f"worker-{self.index}.supervisor-watch"

    def _watch_supervisor(self) -> None:
        for _ in messages(self.channel):
            pass  # the supervisor sends nothing; the end of the stream is what counts
        logger.warning(
            "worker %d: the supervisor (pid %d) is gone without stopping this worker; stopping as on SIGTERM",
            self.index,
            self.supervisor_pid,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # the pipeline's own signal handling does the rest


class _Announce(AfterPipelineStart):
    """Tells the supervisor where this worker's status app listens, once the pipeline runs.

    Announcing only after the start lets the supervisor tell a worker that was still
    starting (nothing consumed, nothing to commit) from one that was running."""

    def __init__(self, channel: socket.socket, port: int):
        self.channel = channel
        self.port = port

    def after_pipeline_start(self, pipeline: Any) -> None:
        send(self.channel, {"status_port": self.port})
