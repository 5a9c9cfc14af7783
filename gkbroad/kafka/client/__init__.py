"""The only package of gkbroad that imports kafka-python (see tests/unit/test_code_rules.py).

`consumer` is the consumer-group adapter the ConsumerGroup is built on;
`producer` writes dead letters and waits for the broker's acknowledgement; `admin`
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
    JoinAnswers,
    KafkaError,
    PositionsLost,
    TopicPartition,
)
from .producer import PRODUCER_DEFAULTS, ProduceFailed, RecordProducer, producer_settings

__all__ = [
    "ASSIGNORS",
    "CONSUMER_DEFAULTS",
    "KAFKA_PYTHON_CHECKED",
    "PRIVATE_NAMES",
    "PRODUCER_DEFAULTS",
    "REBALANCE_ERRORS",
    "ConfigurationRefused",
    "ConsumerClient",
    "JoinAnswers",
    "KafkaError",
    "PositionsLost",
    "ProduceFailed",
    "RecordProducer",
    "TopicPartition",
    "producer_settings",
]
