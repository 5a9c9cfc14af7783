"""The status WSGI application and the middleware that mounts it in another app.

Routes (GET or HEAD):

- ``/healthz``: ``200 ok`` while healthy; ``503`` and a one-line JSON
  ``{"healthy": false, "reason": "..."}`` otherwise (rules in gkbroad.observability.status).
- ``/readyz``: ``200`` while ready, ``503`` otherwise, both with a one-line JSON
  ``{"ready": ..., "reason": "..."}`` (the reason also says why a ready member
  has no partitions).
- ``/status.json``: the pipeline's snapshot (gkbroad.observability.status.snapshot), with the
  samples of the last 15 minutes under ``trends``.
- ``/metrics``: Prometheus metrics (gkbroad.wsgi.metrics; needs the ``prometheus`` extra).
- ``/``: the same as a small HTML page, with charts of the samples, that refreshes itself.

For a pipeline, each answer is computed from in-memory state, without I/O, so
the pages stay fast however busy the pipeline is.

The routes are written once, in `status_routes`, over a `StatusSource`: a
pipeline here, the supervisor of ``gkbroad run --processes N`` (which gathers
its workers' answers) in gkbroad.supervisor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..errors import ConfigError
from ..observability.status import readiness, unhealthy
from .metrics import metrics_response
from .page import render_page

__all__ = ["StatusMiddleware", "StatusSource", "WSGIApp", "status_app", "status_routes"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StatusSource(Protocol):
    """What the status routes ask: why it is unhealthy (None when healthy), whether it is ready and
    why, its status as plain data, that status as an HTML page, and the /metrics answer
    (status line, content type, body)."""

    def unhealthy(self) -> str | None: ...

    def readiness(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...

    def page(self, status: dict[str, Any]) -> str: ...

    def metrics(self) -> tuple[str, str, bytes]: ...


class _PipelineSource:
    def __init__(self, pipeline: Any):
        pipeline.hooks.track_calls()  # for the stuck handler rule of /healthz
        self.pipeline = pipeline

    def unhealthy(self) -> str | None:
        return unhealthy(self.pipeline)

    def readiness(self) -> tuple[bool, str]:
        return readiness(self.pipeline)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.pipeline.status()
        return status

    def page(self, status: dict[str, Any]) -> str:
        return render_page(status)

    def metrics(self) -> tuple[str, str, bytes]:
        return metrics_response(self.pipeline)


def status_app(pipeline: Any) -> WSGIApp:
    """A WSGI application serving /healthz, /readyz, /status.json, /metrics and / for `pipeline`."""
    return status_routes(_PipelineSource(pipeline))


def status_routes(source: StatusSource) -> WSGIApp:
    """A WSGI application serving /healthz, /readyz, /status.json, /metrics and / from `source`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _respond(start_response, "405 Method Not Allowed", "text/plain", b"GET or HEAD only\n", method)
        path = environ.get("PATH_INFO") or "/"
        if path == "/healthz":
            reason = source.unhealthy()
            if reason is None:
                return _respond(start_response, "200 OK", "text/plain", b"ok\n", method)
            body = json.dumps({"healthy": False, "reason": reason}).encode() + b"\n"
            return _respond(start_response, "503 Service Unavailable", "application/json", body, method)
        if path == "/readyz":
            ready, reason = source.readiness()
            body = json.dumps({"ready": ready, "reason": reason}).encode() + b"\n"
            status = "200 OK" if ready else "503 Service Unavailable"
            return _respond(start_response, status, "application/json", body, method)
        if path == "/status.json":
            body = json.dumps(source.status(), indent=1).encode() + b"\n"
            return _respond(start_response, "200 OK", "application/json", body, method)
        if path == "/metrics":
            status, content_type, body = source.metrics()
            return _respond(start_response, status, content_type, body, method)
        if path == "/":
            body = source.page(source.status()).encode()
            return _respond(start_response, "200 OK", "text/html; charset=utf-8", body, method)
        return _respond(
            start_response,
            "404 Not Found",
            "text/plain",
            b"not found: try /, /healthz, /readyz, /status.json, /metrics\n",
            method,
        )

    return app


class StatusMiddleware:
    """Serves the status app under `prefix` (default ``/_gkbroad``) and everything else with `app`.

    ``/_gkbroad/healthz``, ``/_gkbroad/readyz``, ``/_gkbroad/status.json``, ``/_gkbroad/metrics`` and ``/_gkbroad/`` reach
    the status app with the prefix moved from PATH_INFO to SCRIPT_NAME, as
    WSGI mounting does; ``/_gkbroad`` redirects to ``/_gkbroad/`` so the
    page's relative links work.
    """

    def __init__(self, app: WSGIApp, pipeline: Any, prefix: str = "/_gkbroad"):
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigError(f"prefix: must start with '/' and not end with one, got {prefix!r}")
        self.app = app
        self.pipeline = pipeline
        self.prefix = prefix
        self.status = status_app(pipeline)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if path == self.prefix:
            location = environ.get("SCRIPT_NAME", "") + self.prefix + "/"
            start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0")])
            return [b""]
        if not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        inner = dict(environ)
        inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
        inner["PATH_INFO"] = path[len(self.prefix) :]
        return self.status(inner, start_response)


def _respond(
    start_response: Callable[..., Any], status: str, content_type: str, body: bytes, method: str
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [b""] if method == "HEAD" else [body]
