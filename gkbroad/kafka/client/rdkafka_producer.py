"""LibrdkafkaRecordProducer: the writers' RecordProducer on librdkafka (confluent-kafka), under gevent.

What the binding allows under gevent (probed on this machine, see
docs/guides/clients.md) and how this class keeps to it:

- ``produce()`` never blocks: it queues the record, or raises BufferError when
  librdkafka's queue is full; then the queue is served (``poll(0)``) and the
  record is offered again after a cooperative sleep.
- Delivery reports come only from ``poll()`` (and ``flush()``, never called: it
  blocks the OS thread). A greenlet waiting for its records calls ``poll(0)``
  and sleeps in gevent between calls, 1 ms at first and up to 5 ms. The
  delivery callback only counts the result into its batch: a callback that
  switched greenlets could let another greenlet into the handle.
- The binding keeps its call state per OS thread and handle, so two greenlets
  must never be inside one handle at once: every call into the producer is
  made holding ``_inside`` (none of them waits in gevent, so it is held for
  one call only).
- ``close()`` flushes without a timeout; the producer's queue is purged first
  (every write was acknowledged or given up by then) and ``close()`` runs in
  gevent's thread pool, waited for with a timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent import get_hub
from gevent.lock import Semaphore

from .gevent_check import check_gevent_patched
from .producer import ProduceFailed, ProducerRecord
from .rdkafka_settings import import_confluent_kafka

__all__ = ["LibrdkafkaRecordProducer"]

logger = logging.getLogger(__name__)
librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_IDLE_FIRST, _IDLE_LONGEST = 0.001, 0.005


class _Batch:
    """The delivery results of one ``send_all``: written by the delivery callback, read by its greenlet."""

    def __init__(self, size: int):
        self.size = size
        self.answered = 0
        self.error: Any = None  # the first refusal librdkafka reported

    def delivered(self, error: Any, message: Any) -> None:
        self.answered += 1
        if error is not None and self.error is None:
            self.error = error


class LibrdkafkaRecordProducer:
    """One lazily created confluent-kafka ``Producer``; ``send_all`` waits at most `timeout` seconds.

    `settings` are librdkafka producer settings (``bootstrap.servers`` at
    least); the producer is created by the first ``send_all``. Safe to share
    between greenlets.
    """

    def __init__(self, settings: dict[str, Any], timeout: float):
        check_gevent_patched()
        self._module = import_confluent_kafka()
        timeout_ms = max(int(timeout * 1000), 1)
        self._settings = {"message.timeout.ms": timeout_ms, **settings}
        self._timeout = timeout
        self._producer: Any = None
        self._inside = Semaphore()
        self._last_error: str | None = None

    def send_all(self, records: list[ProducerRecord]) -> None:
        """Produce ``(topic, key, value, headers)`` records, in order; return once the broker
        acknowledged every one, or raise ProduceFailed."""
        deadline = time.monotonic() + self._timeout
        batch = _Batch(len(records))
        for topic, key, value, headers in records:
            self._produce(batch, deadline, topic, value=value, key=key, headers=headers)
        idle = _IDLE_FIRST
        while batch.answered < batch.size:
            with self._inside:
                self._live().poll(0)
            if batch.answered >= batch.size:
                break
            if time.monotonic() >= deadline:
                missing = batch.size - batch.answered
                raise ProduceFailed(
                    f"{missing} of {batch.size} record(s) not acknowledged within {self._timeout:.1f} s{self._cause()}"
                )
            gevent.sleep(idle)
            idle = min(idle * 2, _IDLE_LONGEST)
        if batch.error is not None:
            raise ProduceFailed(f"{batch.error.str()} ({batch.error.name()}){self._cause()}")

    def _produce(self, batch: _Batch, deadline: float, topic: str, **record: Any) -> None:
        """Queue one record; while librdkafka's queue is full, serve it and wait cooperatively."""
        module = self._module
        while True:
            try:
                with self._inside:
                    self._connect().produce(topic, on_delivery=batch.delivered, **record)
                return
            except BufferError:
                with self._inside:
                    self._live().poll(0)
            except module.KafkaException as exc:
                error = exc.args[0] if exc.args else exc
                raise ProduceFailed(error.str() if hasattr(error, "str") else str(error)) from None
            if time.monotonic() >= deadline:
                raise ProduceFailed(f"librdkafka's queue stayed full for {self._timeout:.1f} s")
            gevent.sleep(_IDLE_LONGEST)

    def _connect(self) -> Any:
        if self._producer is None:
            module = self._module
            config = {**self._settings, "logger": librdkafka_log, "error_cb": self._on_error}
            try:
                self._producer = module.Producer(config)
            except module.KafkaException as exc:
                raise ProduceFailed(f"librdkafka refused the producer settings: {exc.args[0].str()}") from None
        return self._producer

    def _live(self) -> Any:
        if self._producer is None:
            raise ProduceFailed("the producer is closed")
        return self._producer

    def _on_error(self, error: Any) -> None:
        """librdkafka's error events (served by ``poll``): kept to say why records were not acknowledged."""
        self._last_error = f"{error.str()} ({error.name()})"
        librdkafka_log.debug("librdkafka: %s", self._last_error)

    def _cause(self) -> str:
        return f"; librdkafka's last error: {self._last_error}" if self._last_error else ""

    def close(self, timeout: float) -> None:
        """Drop what is still queued (given up already), then close the producer in the thread pool,
        waiting at most `timeout` seconds; a failure is logged, never raised."""
        if not self._inside.acquire(timeout=timeout):
            logger.warning("the record producer stayed busy for %.1f s; not closed", timeout)
            return
        try:
            producer, self._producer = self._producer, None
            if producer is None:
                return
            producer.purge()
            producer.poll(0)
            get_hub().threadpool.spawn(producer.close).get(timeout=timeout)
        except gevent.Timeout:
            logger.warning("closing the librdkafka record producer took over %.1f s; leaving it to finish", timeout)
        except Exception:
            logger.warning("closing the librdkafka record producer failed", exc_info=True)
        finally:
            self._inside.release()

    def __repr__(self) -> str:  # the settings may hold secrets: never shown
        return f"<LibrdkafkaRecordProducer connected={self._producer is not None}>"
