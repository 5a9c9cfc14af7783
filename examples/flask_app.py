"""A small Flask app with an orders pipeline in each gunicorn gevent worker.

    cd examples && KAFKA_BOOTSTRAP_SERVERS=localhost:9092 gunicorn -c gunicorn.conf.py flask_app:app

run_in_worker builds the pipeline in the worker (after gevent patched it) and
the hooks in gunicorn.conf.py start and stop it. The pipeline's pages are
under /_gkbroad/.
"""

import logging

from flask import Flask, jsonify
from orders import OrdersPipeline
from orders_service import pipeline_options

from gkbroad.wsgi import StatusMiddleware
from gkbroad.wsgi.gunicorn import run_in_worker

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO

pipeline = run_in_worker(OrdersPipeline, **pipeline_options())

app = Flask(__name__)
app.wsgi_app = StatusMiddleware(app.wsgi_app, pipeline)


@app.route("/")
def index():
    counts = pipeline.counts
    return jsonify(handled=counts["handled"], failed=counts["failed"], batches=counts["batches"])
