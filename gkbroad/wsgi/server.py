"""Serving a WSGI app (the status app, or an app with the pipeline embedded) with gevent.pywsgi.

pywsgi writes a response's headers and its body in two sends. On a keep-alive
connection Nagle's algorithm then holds the body until the client acknowledges
the headers, and clients delay that acknowledgement by about 40 ms: every
request after the first on a connection would take 40 ms more. The listening
socket made here sets TCP_NODELAY, which the accepted connections inherit.
"""

from __future__ import annotations

import logging
from typing import TextIO
from wsgiref.types import WSGIApplication

from gevent import socket
from gevent.pywsgi import WSGIServer

__all__ = ["serve"]


def serve(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 0, log: logging.Logger | TextIO | None = None
) -> WSGIServer:
    """Start serving `app` on host:port (port 0: a free one, see ``server.server_port``); stop() ends it.

    `log` is pywsgi's access log (a file-like or logger); None logs no requests.
    """
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(1024)
    server = WSGIServer(listener, app, log=log)
    server.start()
    return server
