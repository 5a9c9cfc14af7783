"""Options of the orders pipeline that the web examples embed, from the environment.

KAFKA_BOOTSTRAP_SERVERS (default localhost:9092), ORDERS_TOPIC (orders) and
ORDERS_GROUP (orders-web) say which Kafka, topic and consumer group to use;
KAFKA_CLIENT_LIBRARY (kafka-python) which client consumes: "librdkafka" for
confluent-kafka (pip install 'gkbroad[librdkafka]').
"""

import os

from gkbroad.kafka import Producer


def client_settings(library: str) -> dict:
    """The ``client`` option, in the names of the client library."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    if library == "librdkafka":
        return {"bootstrap.servers": servers}
    # request_timeout_ms below the session fence's point (3/4 of the session): see docs/guides/delivery.md
    return {"bootstrap_servers": servers, "request_timeout_ms": 4000}


def pipeline_options() -> dict:
    """Options for OrdersPipeline (examples/orders.py), which counts what it handled in `counts`."""
    library = os.environ.get("KAFKA_CLIENT_LIBRARY", "kafka-python")
    return {
        "name": "orders-web",
        "producer": {
            "module": (
                Producer,
                {
                    "client": client_settings(library),
                    "client_library": library,
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
