"""LibrdkafkaTransactionalClient: the transactional producer of exactly-once pipelines on librdkafka, under gevent.

A second ``TransactionalClient`` (transactions.py) beside kafka-python's. What
librdkafka's transactional calls do under gevent (probed on this machine, see
docs/guides/clients.md) and how this class keeps the hub free:

- ``init_transactions``, ``send_offsets_to_transaction``,
  ``commit_transaction`` and ``abort_transaction`` block the calling OS
  thread until they finish or their timeout passes. Calling them again and
  again with a 1 ms timeout, which librdkafka allows after a timeout, did
  not do: ``send_offsets_to_transaction`` takes its timeout as the request's,
  so under load its requests timed out, and librdkafka then aborted the
  process (``rd_kafka_txn_set_state: Assertion ... Invalid transaction state
  transition``). So each runs in gevent's thread pool, with a timeout of
  three quarters of the step's (so librdkafka answers before Transactions
  gives the step up), while the calling greenlet waits cooperatively.
- The Python callbacks those calls serve (``commit_transaction`` flushes)
  run on the pool thread, so they touch no gevent object: the
  ProducerHandle's ``logger`` and ``error_cb`` only keep what they are told,
  for the waiting greenlet to log. No delivery callback: a record the broker
  refused makes ``commit_transaction`` fail, and the transaction is aborted.
- ``begin_transaction`` and ``produce`` are local and are called on the hub
  (a full queue is served as for the writers, rdkafka_producer.ProducerHandle),
  and every call goes through the one ProducerHandle, so no two greenlets are
  inside the producer at once.
- The group metadata ``send_offsets`` takes is what the consumer's poll
  greenlet last read (LibrdkafkaClient.group_metadata): only that greenlet
  may call the consumer. confluent-kafka hands it out as bytes.

Errors: a fatal one (the producer was fenced, or the broker refuses
transactions) is FatalTransactionError, after which Transactions stops; any
other is TransactionStepFailed, and Transactions aborts the transaction and
tries again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gevent
from kafka.structs import TopicPartition

from .producer import ProducerRecord
from .rdkafka_producer import ProducerHandle
from .transactions import FatalTransactionError, TransactionStepFailed

__all__ = ["LibrdkafkaTransactionalClient"]

_GRACE = 1.0  # seconds the greenlet waits past librdkafka's own timeout


class LibrdkafkaTransactionalClient:
    """A confluent-kafka ``Producer`` with ``transactional.id``, created by ``init``; `timeout` is the
    seconds one step may take (librdkafka's calls get three quarters of it)."""

    def __init__(self, settings: dict[str, Any], transactional_id: str, timeout: float):
        self._transactional_id = transactional_id
        self._timeout = timeout
        self._call_timeout = max(timeout * 3 / 4, 0.001)
        self._handle = ProducerHandle({**settings, "transactional.id": transactional_id}, timeout)

    def init(self) -> None:
        self._blocking("init_transactions")

    def begin(self) -> None:
        try:
            self._handle.call("begin_transaction")
        except self._handle.module.KafkaException as exc:
            raise self._failure("begin_transaction", exc.args[0]) from None

    def send(self, records: Sequence[ProducerRecord]) -> None:
        deadline = time.monotonic() + self._timeout
        for topic, key, value, headers in records:
            self._handle.produce(deadline, topic, value=value, key=key, headers=headers)

    def send_offsets(self, offsets: dict[TopicPartition, int], group_metadata: Any) -> None:
        if group_metadata is None:
            raise TransactionStepFailed("no group metadata yet: the consumer has not been assigned partitions")
        module = self._handle.module
        positions = [module.TopicPartition(tp.topic, tp.partition, offset + 1) for tp, offset in offsets.items()]
        self._blocking("send_offsets_to_transaction", positions, group_metadata)

    def commit(self) -> None:
        self._blocking("commit_transaction")

    def abort(self) -> None:
        self._blocking("abort_transaction")

    def close(self, timeout: float) -> None:
        """Drop the open transaction's records, if any, and close (librdkafka aborts the transaction)."""
        self._handle.close(timeout)

    def _blocking(self, method: str, *args: Any) -> None:
        """One blocking transactional call in the thread pool, with librdkafka's timeout."""
        try:
            self._handle.call_in_thread(method, *args, self._call_timeout, wait=self._call_timeout + _GRACE)
        except self._handle.module.KafkaException as exc:
            raise self._failure(method, exc.args[0]) from None
        except gevent.Timeout:
            raise TransactionStepFailed(f"{method} did not return within {self._call_timeout:.1f} s") from None

    def _failure(self, method: str, error: Any) -> Exception:
        text = f"{method}: {error.str()} ({error.name()})"
        return FatalTransactionError(text) if error.fatal() else TransactionStepFailed(text)

    def __repr__(self) -> str:  # the settings may hold secrets: never shown
        return f"<LibrdkafkaTransactionalClient transactional_id={self._transactional_id!r}>"
