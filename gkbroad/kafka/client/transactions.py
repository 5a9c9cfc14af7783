"""TransactionalClient: kafka-python's transactional producer, one plain call per step.

gkbroad.kafka.transactions drives a transaction step by step (init, begin,
send, offsets, commit, abort) and bounds every step with its own timeout:
kafka-python waits for ``send_offsets_to_transaction``, ``commit_transaction``
and ``abort_transaction`` without one, and a broker that drops the connection
instead of answering (a fenced producer on Tansu) makes them wait forever.
So these methods only call kafka-python's public KafkaProducer API and let
the caller run them where it can abandon them. ``TransactionalClient`` is the
Protocol this adapter, librdkafka's (rdkafka_transactions.py) and the unit
tests' in-memory fake provide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import kafka.errors as Errors
from kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from .producer import ProducerRecord, close_producer, send_records

__all__ = [
    "FATAL_TRANSACTION_ERRORS",
    "FatalTransactionError",
    "KafkaTransactionalClient",
    "TransactionStepFailed",
    "TransactionalClient",
]


class TransactionStepFailed(Errors.KafkaError):  # type: ignore[misc]  # kafka-python ships no types
    """A step of a transaction failed (librdkafka's words); the transaction can be aborted and tried again."""


class FatalTransactionError(Errors.KafkaError):  # type: ignore[misc]  # kafka-python ships no types
    """librdkafka said the transactional producer cannot go on (fenced, or transactions refused)."""


# Errors after which the producer cannot abort and go on: another producer took the
# transactional_id over, or the broker refuses transactions altogether.
FATAL_TRANSACTION_ERRORS: tuple[type[BaseException], ...] = (
    FatalTransactionError,
    Errors.ProducerFencedError,
    Errors.InvalidProducerEpochError,
    Errors.TransactionalIdAuthorizationFailedError,
    Errors.UnsupportedVersionError,
    Errors.UnsupportedForMessageFormatError,
    Errors.IllegalStateError,
)


class TransactionalClient(Protocol):
    """One transactional producer, each step a blocking call."""

    def init(self) -> None:
        """Connect, fence earlier producers of the same transactional_id and abort their open transaction."""

    def begin(self) -> None: ...

    def send(self, records: Sequence[ProducerRecord]) -> None:
        """Hand the records to the open transaction (delivered by ``commit``)."""

    def send_offsets(self, offsets: dict[TopicPartition, int], group_metadata: Any) -> None:
        """Add {tp: last processed offset} of the consumer group to the open transaction."""

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def close(self, timeout: float) -> None: ...


class KafkaTransactionalClient:
    """A KafkaProducer with `transactional_id`, built by ``init`` (so a broker that is down at start
    is one failed transaction, not a failed start). `timeout` is the seconds one step may take."""

    def __init__(self, settings: dict[str, Any], transactional_id: str, timeout: float):
        # kafka-python's own limits below the step timeout, so that a broker that is down or slow fails
        # a step (which is tried again) rather than outlasting it (which fails the pipeline).
        inner_ms = max(int(timeout * 1000) * 3 // 4, 1)
        limits = {"bootstrap_timeout_ms": inner_ms, "max_block_ms": inner_ms, "request_timeout_ms": inner_ms}
        self._settings = {**limits, **settings, "transactional_id": transactional_id, "enable_idempotence": True}
        self._settings.pop("acks", None)  # a transactional producer always waits for all replicas
        self._producer: KafkaProducer | None = None

    def init(self) -> None:
        if self._producer is None:
            self._producer = KafkaProducer(**self._settings)
        self._producer.init_transactions()

    def begin(self) -> None:
        self._live().begin_transaction()

    def send(self, records: Sequence[ProducerRecord]) -> None:
        send_records(self._live(), records)

    def send_offsets(self, offsets: dict[TopicPartition, int], group_metadata: Any) -> None:
        to_send = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in offsets.items()}
        self._live().send_offsets_to_transaction(to_send, group_metadata)

    def commit(self) -> None:
        self._live().commit_transaction()

    def abort(self) -> None:
        self._live().abort_transaction()

    def close(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        close_producer(producer, timeout, "the transactional producer")

    def _live(self) -> KafkaProducer:
        if self._producer is None:
            raise Errors.IllegalStateError("the transactional producer was not initialised (init) or was closed")
        return self._producer

    def __repr__(self) -> str:  # the settings may hold secrets: never shown
        return f"<KafkaTransactionalClient transactional_id={self._settings['transactional_id']!r}>"
