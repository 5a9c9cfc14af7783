"""Run a pipeline inside every worker of ``gunicorn -k gevent``.

The gevent worker applies ``gevent.monkey.patch_all()`` when it starts, after
the fork. Anything the master imported before that stays unpatched, and
kafka-python, imported unpatched, keeps a blocking selector and hangs. So the
pipeline must be built in the worker, from the app module, and the master must
not preload the app nor import kafka. These hooks do the wiring and refuse the
traps with a message saying what to change.

In the app module (imported by each worker after patching)::

    from gkbroad.wsgi import StatusMiddleware
    from gkbroad.wsgi.gunicorn import run_in_worker

    pipeline = run_in_worker(Orders, **options)
    app.wsgi_app = StatusMiddleware(app.wsgi_app, pipeline)

In gunicorn.conf.py::

    from gkbroad.wsgi.gunicorn import child_exit, on_starting, post_worker_init, worker_exit  # noqa: F401

    worker_class = "gevent"

`post_worker_init` starts the worker's pipelines and watches for the moment
gunicorn tells the worker to stop (SIGTERM): the pipelines' stop (drain,
commit, leave the group) begins then, while gunicorn finishes the requests in
flight, not after them. `worker_exit` waits for that stop. Keep the pipeline's
``shutdown_timeout`` below gunicorn's ``graceful_timeout``, after which
gunicorn kills the worker.

`child_exit` (master) tells prometheus_client's multiprocess mode that a
worker is gone, when ``PROMETHEUS_MULTIPROC_DIR`` is set, so its gauges leave
the sums (its counters stay counted).

gunicorn loads its gevent worker only when the master starts, and a missing
dependency of it (gunicorn 27 lists ``packaging`` only under its ``gevent``
extra) shows as "class uri 'gevent' invalid or not found". So importing this
module (from gunicorn.conf.py) loads the worker first and says what to install.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import gevent
from gevent import monkey

from ..errors import ConfigError
from .metrics import forget_process

__all__ = ["child_exit", "on_starting", "post_worker_init", "run_in_worker", "worker_exit"]

logger = logging.getLogger(__name__)

_WHAT_TO_CHANGE = (
    "remove --preload (preload_app = True) and do not import the app, gkbroad.kafka or kafka from "
    "gunicorn.conf.py; each gevent worker then imports the app after it has patched"
)

_pipelines: list[Any] = []
# How often the worker's stop flag is looked at, in seconds.
_WATCH_EVERY = 0.1


def _check_gevent_worker() -> None:
    try:
        importlib.import_module("gunicorn.workers.ggevent")
    except ImportError as exc:
        raise ConfigError(
            f"gkbroad: gunicorn's gevent worker cannot load ({exc}); install it with its extra: "
            "pip install 'gunicorn[gevent]'"
        ) from exc


_check_gevent_worker()


def run_in_worker(pipeline_class: type, **options: Any) -> Any:
    """Build ``pipeline_class(**options)`` for this worker; post_worker_init starts it, worker_exit stops it."""
    if not monkey.is_module_patched("socket"):
        raise ConfigError(
            "gkbroad: run_in_worker() was called before gevent patched this process, so the app module is "
            "being imported in the gunicorn master (or outside a gevent worker), where kafka-python would hang; "
            + _WHAT_TO_CHANGE
        )
    pipeline = pipeline_class(**options)
    _pipelines.append(pipeline)
    return pipeline


def on_starting(server: Any) -> None:
    """Master hook: refuse to start when kafka is already imported here, before any worker patched."""
    if "kafka" in sys.modules:
        raise ConfigError(
            "gkbroad: kafka was imported in the gunicorn master before the gevent workers patch the standard "
            "library, and kafka-python would hang in the workers; " + _WHAT_TO_CHANGE
        )


def post_worker_init(worker: Any) -> None:
    """Worker hook: start the pipelines the app module registered with run_in_worker."""
    if not _pipelines:
        raise ConfigError(
            "gkbroad: no pipeline to start in this worker: build it with "
            "gkbroad.wsgi.gunicorn.run_in_worker(PipelineClass, **options) in the app module"
        )
    for pipeline in _pipelines:
        shutdown = pipeline.options["shutdown_timeout"] / 1000.0
        if shutdown >= worker.cfg.graceful_timeout:
            logger.warning(
                "[%s] shutdown_timeout (%.0fs) is not below gunicorn's graceful_timeout (%ss): a slow drain "
                "will be killed before it commits",
                pipeline.name,
                shutdown,
                worker.cfg.graceful_timeout,
            )
        pipeline.start()
    gevent.spawn(_stop_when_told, worker)


def _stop_when_told(worker: Any) -> None:
    """Begin every pipeline's stop as soon as gunicorn clears ``worker.alive``
    (SIGTERM), in parallel with the requests the worker still finishes."""
    while worker.alive:
        gevent.sleep(_WATCH_EVERY)
    running = [p for p in _pipelines if p.state == "running"]
    for pipeline in running:
        logger.info("[%s] worker %s told to stop: stopping the pipeline now", pipeline.name, worker.pid)
    gevent.joinall([gevent.spawn(pipeline.stop) for pipeline in running])


def worker_exit(server: Any, worker: Any) -> None:
    """Worker hook: stop the pipelines gracefully (drain, commit, leave the group), or wait for the stop
    begun when the worker was told to stop, as the worker exits."""
    for pipeline in _pipelines:
        if pipeline.state != "created":  # started: stop() returns the result of a stop under way or done
            clean = pipeline.stop()
            logger.info("[%s] stopped in worker %s%s", pipeline.name, worker.pid, "" if clean else " (not clean)")


def child_exit(server: Any, worker: Any) -> None:
    """Master hook: drop an exited worker's live gauges from the Prometheus multiprocess directory."""
    forget_process(worker.pid)
