"""/metrics: the Prometheus text format, in the status app or as a WSGI app of its own.

prometheus_client is imported on the first request, so the status app works
without the ``prometheus`` extra (``/metrics`` then answers 404 and says what
to install). Before answering, the pipeline's own gauges are refreshed, so a
scrape of a single process is never older than the scrape itself; with
``PROMETHEUS_MULTIPROC_DIR`` set, the answer adds up every process writing
to that directory (gkbroad.observability.prometheus).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CONTENT_TYPE", "forget_process", "metrics_app", "metrics_body", "metrics_response"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_body(pipeline: Any | None) -> bytes | None:
    """The text exposition, with `pipeline`'s gauges refreshed first; None without prometheus_client."""
    try:
        from ..observability.prometheus import PrometheusMetrics, exposition
    except ImportError:
        return None
    hook = pipeline.hooks.find(PrometheusMetrics) if pipeline is not None else None
    if hook is not None and pipeline is not None:
        hook.refresh(pipeline.status())
    return exposition()


def metrics_app(pipeline: Any | None = None) -> WSGIApp:
    """A WSGI app answering every GET with the metrics, as ``prometheus_client.make_wsgi_app`` does,
    for mounting at a path of your own; `pipeline` (optional) gets its gauges refreshed per scrape."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, content_type, body = metrics_response(pipeline)
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


def metrics_response(pipeline: Any | None) -> tuple[str, str, bytes]:
    """(status, content type, body) of a /metrics request."""
    body = metrics_body(pipeline)
    if body is None:
        text = b"/metrics needs prometheus-client: pip install 'gkbroad[prometheus]'\n"
        return "404 Not Found", "text/plain", text
    return "200 OK", CONTENT_TYPE, body


def forget_process(pid: int) -> None:
    """In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), drop the live gauges of a process that
    exited, so they leave the sums (its counters stay counted). For whatever restarts processes: the
    gunicorn master (gkbroad.wsgi.gunicorn.child_exit) and the supervisor of ``gkbroad run --processes N``."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped upstream
