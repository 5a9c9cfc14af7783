"""The only package of gkbroad that imports kafka-python (see tests/unit/test_code_rules.py).

`group_client` states what the consumer group needs from a client (the
`GroupClient` Protocol); `consumer` is the adapter over kafka-python that
provides it, and `rdkafka_consumer` the one over librdkafka (confluent-kafka, an optional
extra imported only when a pipeline asks for it; `rdkafka_settings` checks its settings);
`writers` states what the writers (dead letters, outputs, the retry topic) need (the
`RecordProducer` Protocol) and builds it on either library: `producer` over kafka-python,
`rdkafka_producer` over librdkafka;
`transactions` is the transactional producer of exactly-once pipelines; `admin`
holds the one-shot requests of the command line (topics, offsets, groups,
producing records).
"""

from .admin import PRIVATE_NAMES as ADMIN_PRIVATE_NAMES
from .consumer import (
    ASSIGNORS,
    CONSUMER_DEFAULTS,
    KAFKA_PYTHON_CHECKED,
    PARTITION_FETCH_BYTES,
    REBALANCE_ERRORS,
    ConfigurationRefused,
    ConsumerClient,
    KafkaError,
    PositionsLost,
    TopicPartition,
)
from .consumer import PRIVATE_NAMES as CONSUMER_PRIVATE_NAMES
from .group_client import CommitFuture, GroupClient, JoinAnswers, RebalanceHandler
from .producer import PRODUCER_DEFAULTS, KafkaRecordProducer, ProduceFailed, ProducerRecord, producer_settings
from .rdkafka_consumer import LibrdkafkaClient
from .rdkafka_settings import (
    LIBRDKAFKA_ASSIGNORS,
    LIBRDKAFKA_MANAGED,
    LIBRDKAFKA_PARTITION_FETCH_BYTES,
    LIBRDKAFKA_POLL_INTERVAL_MS,
    ExtraMissing,
    import_confluent_kafka,
    kafka_python_connection,
    librdkafka_producer_setting_errors,
    librdkafka_setting_errors,
    untranslated_security,
)
from .transactions import FATAL_TRANSACTION_ERRORS, KafkaTransactionalClient, TransactionalClient
from .writers import RecordProducer, WriterConnection, record_producer, transactional_client

# Every private name of kafka-python the package uses (tests/unit/test_kafka_client.py checks them).
PRIVATE_NAMES = (*CONSUMER_PRIVATE_NAMES, *ADMIN_PRIVATE_NAMES)

__all__ = [
    "ASSIGNORS",
    "CONSUMER_DEFAULTS",
    "PARTITION_FETCH_BYTES",
    "FATAL_TRANSACTION_ERRORS",
    "KAFKA_PYTHON_CHECKED",
    "LIBRDKAFKA_ASSIGNORS",
    "LIBRDKAFKA_MANAGED",
    "LIBRDKAFKA_PARTITION_FETCH_BYTES",
    "LIBRDKAFKA_POLL_INTERVAL_MS",
    "PRIVATE_NAMES",
    "PRODUCER_DEFAULTS",
    "REBALANCE_ERRORS",
    "CommitFuture",
    "ConfigurationRefused",
    "ConsumerClient",
    "ExtraMissing",
    "GroupClient",
    "JoinAnswers",
    "KafkaError",
    "KafkaRecordProducer",
    "KafkaTransactionalClient",
    "LibrdkafkaClient",
    "PositionsLost",
    "ProduceFailed",
    "ProducerRecord",
    "RebalanceHandler",
    "RecordProducer",
    "TopicPartition",
    "TransactionalClient",
    "WriterConnection",
    "import_confluent_kafka",
    "kafka_python_connection",
    "librdkafka_producer_setting_errors",
    "librdkafka_setting_errors",
    "producer_settings",
    "record_producer",
    "transactional_client",
    "untranslated_security",
]
