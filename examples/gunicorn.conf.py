"""gunicorn settings for flask_app.py: gevent workers, each running its own pipeline.

    cd examples && gunicorn -c gunicorn.conf.py flask_app:app

Two workers are two members of one consumer group: Kafka splits the
partitions between them. Do not add --preload / preload_app = True, and do not
import the app or kafka here: the master would import kafka before the
workers patch gevent, and on_starting / run_in_worker refuse to start.
"""

from gkbroad.wsgi.gunicorn import child_exit, on_starting, post_worker_init, worker_exit  # noqa: F401

bind = "127.0.0.1:8000"
worker_class = "gevent"
workers = 2
# Above the pipeline's shutdown_timeout (20 s), so the drain and the final commit finish before gunicorn kills.
graceful_timeout = 30
