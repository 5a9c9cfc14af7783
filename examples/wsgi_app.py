"""A plain WSGI app served by gevent.pywsgi, with an orders pipeline running in the same process.

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 ORDERS_TOPIC=orders python examples/wsgi_app.py --port 8000

The app's own route is /; the pipeline's pages are mounted under /_gkbroad/
(/_gkbroad/healthz, /_gkbroad/readyz, /_gkbroad/status.json, /_gkbroad/). SIGTERM or Ctrl-C stops
the server, then the pipeline (drain, commit, leave the group).
"""

from gevent import monkey

monkey.patch_all()  # first, before anything imports kafka

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from orders import OrdersPipeline  # noqa: E402
from orders_service import pipeline_options  # noqa: E402

from gkbroad.wsgi import StatusMiddleware, serve  # noqa: E402


def make_app(counters):
    """`counters` is the pipeline's tally (OrdersPipeline.counts)."""

    # The application itself: a route that answers from memory, as most routes of a web app do.
    def app(environ, start_response):
        if environ["PATH_INFO"] != "/":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = f"orders service: {counters['handled']} handled, {counters['failed']} failed\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO

    pipeline = OrdersPipeline(**pipeline_options())
    server = serve(StatusMiddleware(make_app(pipeline.counts), pipeline), "127.0.0.1", args.port)
    pipeline.start()
    print(f"serving on http://127.0.0.1:{server.server_port}/ (status: /_gkbroad/)", flush=True)

    stop = Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    stop.wait()
    server.stop(timeout=5)
    return 0 if pipeline.stop() else 1


if __name__ == "__main__":
    sys.exit(main())
