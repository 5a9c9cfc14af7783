"""Health and status pages for a pipeline embedded in a WSGI application.

`status_app(pipeline)` serves /healthz, /readyz, /status.json and / (an HTML page),
`status_routes(source)` the same routes for any `StatusSource` (the supervisor of
``gkbroad run --processes N`` is one);
`StatusMiddleware(app, pipeline)` mounts it under a prefix of an existing
app; `metrics_app(pipeline)` serves Prometheus metrics alone; `serve(app, host, port)` serves either with gevent.pywsgi. `gkbroad.wsgi.gunicorn` has the hooks that run a pipeline in each worker
of ``gunicorn -k gevent``. Nothing here imports kafka, so a gunicorn master
may import it before its workers patch gevent.
"""

from .app import StatusMiddleware, StatusSource, status_app, status_routes
from .metrics import metrics_app
from .server import serve

__all__ = ["StatusMiddleware", "StatusSource", "metrics_app", "serve", "status_app", "status_routes"]
