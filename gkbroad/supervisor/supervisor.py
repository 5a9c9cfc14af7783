"""The supervisor of ``gkbroad run --processes N``: start N workers, keep them running, stop them together.

One greenlet per worker slot starts its process, waits for it to end and, unless
the supervisor is stopping, starts it again after the backoff of its
RestartPolicy, logging how the process ended. Two things end the run instead:

- a worker that exits with code 2 (its configuration is invalid; the supervisor
  validated it before starting anyone, so the file or the environment changed
  since): every worker is stopped and the supervisor exits 2;
- a worker that dies more than ``max_restarts`` times within ``restart_window``:
  every worker is stopped and the supervisor exits 1.

SIGTERM or SIGINT orders every worker to stop (over its channel: see
channel.py), which it does as on SIGTERM: it drains, commits and leaves the
group within its ``shutdown_timeout``; a worker still running ``STOP_MARGIN``
seconds after that is killed. A further signal orders the workers to abort
their drains (they still commit what was acknowledged). The exit code is 0
only when every worker exited 0 from that stop.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import gevent
from gevent.event import Event

from ..wsgi.metrics import forget_process
from .channel import ABORT, STOP
from .process import WorkerProcess
from .restarts import RestartPolicy, exit_reason

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2

# Seconds a worker gets beyond its shutdown_timeout to exit: the interpreter's own teardown.
STOP_MARGIN = 5.0


class Supervisor:
    """Runs `count` workers of `command` (a ``gkbroad run`` command line) for the pipeline `name`.

    `run_options` is the validated ``[run]`` table (restart policy); `shutdown_timeout` is
    the pipeline's, in seconds.
    """

    def __init__(
        self, name: str, command: list[str], count: int, run_options: dict[str, Any], shutdown_timeout: float
    ) -> None:
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        self.workers = [
            WorkerProcess(
                index,
                count,
                command,
                RestartPolicy(
                    run_options["max_restarts"],
                    run_options["restart_window"] / 1000.0,
                    run_options["restart_backoff"] / 1000.0,
                ),
            )
            for index in range(count)
        ]
        self.state = "running"
        self._stopping = Event()
        self._exit_code: int | None = None  # set by what ends the run on its own (a crash loop, a config error)
        self._unclean: dict[int, str] = {}  # worker index -> how it ended, for those that did not stop cleanly

    def run(self) -> int:
        """Run until SIGTERM/SIGINT, a crash loop or a configuration error; the exit code."""
        handlers = [gevent.signal_handler(sig, self._on_signal, sig) for sig in (signal.SIGINT, signal.SIGTERM)]
        try:
            logger.info("supervisor (pid %d) starting %d workers of %s", os.getpid(), len(self.workers), self.name)
            keepers = [gevent.spawn(self._keep, worker) for worker in self.workers]
            for keeper, worker in zip(keepers, self.workers, strict=True):
                keeper.name = f"supervisor.worker-{worker.index}"
                keeper.link_exception(self._keeper_failed)
            self._stopping.wait()
            return self._stop_all(keepers)
        finally:
            for handler in handlers:
                handler.cancel()

    # -- one slot -----------------------------------------------------------------

    def _keep(self, worker: WorkerProcess) -> None:
        """Start `worker`, and start it again whenever it dies, until the supervisor stops."""
        while True:
            try:
                worker.start()
            except OSError as exc:
                self._end(EXIT_FAILURE, f"cannot start {worker.describe()}: {exc.strerror or exc}")
                return
            logger.info("%s started", worker.describe())
            if self._stopping.is_set():  # the stop began while it was being started
                worker.order(STOP)
            code = worker.wait()
            if worker.pid is not None:
                forget_process(worker.pid)
            if self._stopping.is_set():
                self._record_stop(worker, code)
                return
            how = f"{exit_reason(code)} after {worker.ran_for():.1f}s"
            worker.last_exit = how
            if code == EXIT_CONFIG:
                self._end(
                    EXIT_CONFIG,
                    f"{worker.describe()} {how}: its configuration is invalid (its messages are above); "
                    "stopping every worker",
                )
                self._record_stop(worker, code)
                return
            delay = worker.policy.after_death()
            if delay is None:
                self._end(
                    EXIT_FAILURE,
                    f"{worker.describe()} {how}: {worker.policy.deaths_in_window} deaths within "
                    f"{worker.policy.window:.0f}s, more than max_restarts ({worker.policy.max_restarts}) allows; "
                    "it keeps dying, so every worker is stopped",
                )
                self._record_stop(worker, code)
                return
            worker.state = "restarting"
            logger.error("%s %s; starting it again in %.1fs", worker.describe(), how, delay)
            if self._stopping.wait(delay):
                self._record_stop(worker, code, restarting=True)
                return
            worker.restarts += 1

    def _keeper_failed(self, keeper: gevent.Greenlet[..., Any]) -> None:
        """A slot's greenlet died of an error: nobody restarts that worker any more, so the run ends."""
        self._end(EXIT_FAILURE, f"{keeper.name} failed ({keeper.exception!r}): stopping every worker")

    def _record_stop(self, worker: WorkerProcess, code: int, restarting: bool = False) -> None:
        """How `worker` ended once the supervisor stopped: cleanly when `code` is 0, or when SIGTERM
        ended it while it was still starting (its pipeline had not started: nothing consumed);
        not when it was dead already, waiting to be started again."""
        still_starting = worker.state == "starting" and code == -signal.SIGTERM
        if restarting:
            self._unclean[worker.index] = f"{worker.describe()} was not running (it {worker.last_exit})"
        elif code != EXIT_OK and not still_starting:
            self._unclean[worker.index] = f"{worker.describe()} {exit_reason(code)}"
        worker.state = "exited"

    # -- the whole -----------------------------------------------------------------

    def _end(self, code: int, reason: str) -> None:
        """End the run on the supervisor's own decision, with exit `code` (the first reason wins)."""
        if self._exit_code is None and not self._stopping.is_set():
            self._exit_code = code
            logger.error("%s", reason)
        self._stopping.set()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stopping.is_set():
            logger.info(
                "%s received: stopping %d workers (a second signal aborts their drains)", name, len(self.workers)
            )
            self._stopping.set()
            return
        logger.warning("%s received again: telling every worker to abort its drain", name)
        for worker in self.workers:
            worker.order(ABORT)

    def _stop_all(self, keepers: list[gevent.Greenlet[..., Any]]) -> int:
        self.state = "stopping"
        for worker in self.workers:
            if worker.alive:
                if worker.state == "running":
                    worker.state = "stopping"
                worker.order(STOP)
        limit = self.shutdown_timeout + STOP_MARGIN
        if len(gevent.joinall(keepers, timeout=limit)) < len(keepers):
            for worker in self.workers:
                if worker.alive:
                    logger.error("%s did not stop within %.0fs: killing it", worker.describe(), limit)
                    worker.signal(signal.SIGKILL)
            gevent.joinall(keepers)
        self.state = "stopped"
        if self._exit_code is not None:
            return self._exit_code
        if self._unclean:
            unclean = "; ".join(self._unclean[index] for index in sorted(self._unclean))
            logger.error("not every worker stopped cleanly: %s", unclean)
            return EXIT_FAILURE
        logger.info("every worker stopped cleanly")
        return EXIT_OK
