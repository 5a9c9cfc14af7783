"""A worker's side of ``gkbroad run --processes N``: who it is, and what it owes its supervisor.

A worker is an ordinary ``gkbroad run`` whose environment names it (see
gkbroad.observability.worker and channel). It differs from a lone run in three
ways: its options (`worker_options`: a static member's ``instance_id`` gets
the suffix ``-<index>``, so every worker is a distinct member and keeps its
identity across restarts); its status app, which it serves on a free loopback
port and announces to the supervisor once its pipeline has started (the
supervisor's own ``--status`` page gathers them); and the supervisor's orders,
which it carries out as the signals of a lone run: "stop" as a first SIGTERM
(unless its stop began already: the same request may have reached it as a
signal too), "abort" as one more. A worker whose supervisor is gone stops too.
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
from .channel import ABORT, STOP, SUPERVISOR_FD_ENV, messages, send

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

    def follow_orders(self, pipeline: Any) -> None:
        """Carry out the supervisor's orders for `pipeline` (whose run() handles the signals), and
        stop it when the supervisor's end of the channel closes."""
        gevent.spawn(self._follow, pipeline).name = f"worker-{self.index}.orders"

    def _follow(self, pipeline: Any) -> None:
        for message in messages(self.channel):
            order = message.get("order")
            # A stop is a first signal, unless the stop began already (the same request reached this
            # process as a signal too); an abort is one signal more.
            if order == ABORT or (order == STOP and not _stopping(pipeline)):
                _signal_itself()
        if not _stopping(pipeline):
            logger.warning(
                "worker %d: the supervisor (pid %d) is gone without stopping this worker; stopping as on SIGTERM",
                self.index,
                self.supervisor_pid,
            )
            _signal_itself()


def _stopping(pipeline: Any) -> bool:
    return pipeline.state in ("stopping", "stopped")


def _signal_itself() -> None:
    """SIGTERM to this process: Pipeline.run() counts it as it counts any (before run(), it ends the process)."""
    os.kill(os.getpid(), signal.SIGTERM)


class _Announce(AfterPipelineStart):
    """Tells the supervisor where this worker's status app listens, once the pipeline runs.

    Announcing only after the start lets the supervisor tell a worker that was still
    starting (nothing consumed, nothing to commit) from one that was running."""

    def __init__(self, channel: socket.socket, port: int):
        self.channel = channel
        self.port = port

    def after_pipeline_start(self, pipeline: Any) -> None:
        send(self.channel, {"status_port": self.port})
