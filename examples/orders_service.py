"""Options of the orders pipeline that the web examples embed, from the environment.

KAFKA_BOOTSTRAP_SERVERS (default localhost:9092), ORDERS_TOPIC (orders) and
ORDERS_GROUP (orders-web) say which Kafka, topic and consumer group to use.
"""

import os

from gkbroad.kafka import Producer


def pipeline_options() -> dict:
    """Options for OrdersPipeline (examples/orders.py), which counts what it handled in `counts`."""
    return {
        "name": "orders-web",
        "producer": {
            "module": (
                Producer,
                {
                    # request_timeout_ms below the session fence's point (3/4 of the session): see docs/guides/delivery.md
                    "client": {
                        "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
                        "request_timeout_ms": 4000,
                    },
                    "group_name": os.environ.get("ORDERS_GROUP", "orders-web"),
                    "topics": [{"name": os.environ.get("ORDERS_TOPIC", "orders"), "offset_reset_policy": "earliest"}],
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 1000,
                },
            ),
        },
        "processors": {"default": {"concurrency": 50}},
        "batchers": {"default": {"batch_size": 100, "batch_timeout": 500}},
        "shutdown_timeout": 20000,
    }
