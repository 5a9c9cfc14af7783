"""RecordProducer and WriterConnection: what the writers need from a client, on either library.

The writers (dead letters, outputs, the retry topic, and exactly-once's
transactional producer, whose Protocol is in transactions.py) produce through the
library the pipeline's consumer runs on (``client_library``): kafka-python's
``KafkaRecordProducer`` (producer.py) or librdkafka's
``LibrdkafkaRecordProducer`` (rdkafka_producer.py). Both have the shape of the
``RecordProducer`` Protocol, so the writers never ask which one they hold
(tests/unit/test_contracts.py checks both against it).

A ``WriterConnection`` is the consumer's ``client`` settings and their library:
it gives each writer its producer settings, in that library's names (the
consumer's connection and security settings, a client id, then the writer's
own ``client`` settings), and the producer itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.errors import KafkaError

from . import admin
from .producer import KafkaRecordProducer, ProducerRecord, producer_settings
from .rdkafka_settings import librdkafka_connection
from .transactions import KafkaTransactionalClient, TransactionalClient

__all__ = ["RecordProducer", "WriterConnection", "record_producer", "transactional_client"]


class RecordProducer(Protocol):
    """Produces records and says, within a bounded time, whether the broker stored them all."""

    def send_all(self, records: list[ProducerRecord]) -> None:
        """Produce ``(topic, key, value, headers)`` records, in order; return once the broker acknowledged
        every one, else raise ProduceFailed (whose message never holds a setting's value)."""

    def close(self, timeout: float) -> None:
        """Close within `timeout` seconds; a failure is logged, never raised."""


def record_producer(library: str, settings: dict[str, Any], timeout: float) -> RecordProducer:
    """The RecordProducer of `library` ("kafka-python" or "librdkafka") over `settings` in its names."""
    if library == "librdkafka":
        from .rdkafka_producer import LibrdkafkaRecordProducer  # confluent-kafka is an optional extra

        return LibrdkafkaRecordProducer(settings, timeout)
    return KafkaRecordProducer(settings, timeout)


def transactional_client(
    library: str, settings: dict[str, Any], transactional_id: str, timeout: float
) -> TransactionalClient:
    """The transactional producer of `library` over `settings` in its names; `timeout` bounds each step."""
    if library == "librdkafka":
        from .rdkafka_transactions import LibrdkafkaTransactionalClient  # confluent-kafka is an optional extra

        return LibrdkafkaTransactionalClient(settings, transactional_id, timeout)
    return KafkaTransactionalClient(settings, transactional_id, timeout)


@dataclass(frozen=True)
class WriterConnection:
    """The consumer's ``client`` settings (in the names of `library`), as the writers connect with them."""

    library: str
    settings: Mapping[str, Any]

    def producer_settings(self, client_id: str, own: Mapping[str, Any] | None) -> dict[str, Any]:
        """A writer's producer settings: the consumer's connection and security settings, `client_id`,
        then the writer's `own` ``client`` settings (in the same library's names), which win."""
        if self.library == "librdkafka":
            return {**librdkafka_connection(self.settings), "client.id": client_id, **(own or {})}
        return {**producer_settings(self.settings), "client_id": client_id, **(own or {})}

    def create_topic(self, settings: dict[str, Any], topic: str, partitions: int, timeout: float) -> bool:
        """Create `topic` with `partitions` partitions (the retry topic, ``create = true``) through this
        library, connecting with a writer's producer `settings`; False if it already existed. Raises
        KafkaRequestError, naming the topic, when no broker answered within `timeout` seconds or one
        refused."""
        if self.library != "librdkafka":
            return admin.create_topic(settings, topic, partitions, timeout)
        from .rdkafka_admin import create_topic  # confluent-kafka is an optional extra
        from .rdkafka_settings import import_confluent_kafka

        try:
            return create_topic(import_confluent_kafka(), settings, topic, partitions, timeout)
        except KafkaError as exc:
            raise admin.KafkaRequestError(f"creating topic {topic!r}: {exc}") from None
