"""The only package of gkbroad that imports kafka-python (see tests/unit/test_code_rules.py).

`consumer` is the consumer-group adapter the ConsumerGroup is built on; `admin`
holds the one-shot requests of the command line (topics, offsets, producing
records), imported by the commands that need it.
"""

from .consumer import (
    ASSIGNORS,
    CONSUMER_DEFAULTS,
    KAFKA_PYTHON_CHECKED,
    PRIVATE_NAMES,
    REBALANCE_ERRORS,
    ConfigurationRefused,
    ConsumerClient,
    KafkaError,
    PositionsLost,
    TopicPartition,
)

__all__ = [
    "ASSIGNORS",
    "CONSUMER_DEFAULTS",
    "KAFKA_PYTHON_CHECKED",
    "PRIVATE_NAMES",
    "REBALANCE_ERRORS",
    "ConfigurationRefused",
    "ConsumerClient",
    "KafkaError",
    "PositionsLost",
    "TopicPartition",
]
