"""The only package of gkbroad that imports kafka-python (see tests/unit/test_code_rules.py)."""

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
