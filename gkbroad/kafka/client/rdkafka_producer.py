"""LibrdkafkaRecordProducer: the writers' RecordProducer on librdkafka (confluent-kafka), under gevent.

``ProducerHandle`` holds the confluent-kafka ``Producer`` and is the only way
into it, for this writer and for the transactional one (rdkafka_transactions).

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
- A call made in the thread pool serves librdkafka's callbacks on that pool
  thread, where nothing may touch a gevent object (logging's locks are
  gevent's once patched). So the producer's ``logger`` and ``error_cb`` only
  append to a deque (``Reports``), and the greenlet that made the call logs
  what they kept once it returned.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import gevent
from gevent import get_hub
from gevent.lock import Semaphore

from .gevent_check import check_gevent_patched
from .producer import ProduceFailed, ProducerRecord
from .rdkafka_settings import import_confluent_kafka

__all__ = ["LibrdkafkaRecordProducer", "ProducerHandle", "Reports"]

logger = logging.getLogger(__name__)
librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_IDLE_FIRST, _IDLE_LONGEST = 0.001, 0.005


class Reports:
    """librdkafka's log lines and error events, kept by callbacks that may run on a pool thread (a deque's
    append needs no lock) and logged to `log` by a greenlet on the hub (``drain``)."""

    def __init__(self, log: logging.Logger = librdkafka_log) -> None:
        self._kept: deque[tuple[int, str, tuple[Any, ...]]] = deque()
        self._log = log
        self.last_error: str | None = None

    def log(self, level: int, message: str, *args: Any) -> None:
        """The ``logger`` librdkafka calls (as it would a logging.Logger)."""
        self._kept.append((level, message, args))

    def error(self, error: Any) -> None:
        """The ``error_cb``: kept to say why records were not acknowledged; logged at debug level (librdkafka
        logs connection failures itself), a fatal one as an error."""
        self.last_error = f"{error.str()} ({error.name()})"
        self._kept.append((logging.ERROR if error.fatal() else logging.DEBUG, "librdkafka: %s", (self.last_error,)))

    def drain(self) -> None:
        while self._kept:
            level, message, args = self._kept.popleft()
            self._log.log(level, message, *args)


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


class ProducerHandle:
    """One lazily created confluent-kafka ``Producer``, entered by one greenlet at a time (``call``).

    `settings` are librdkafka producer settings; `timeout` (seconds) bounds how
    long ``produce`` waits for room in librdkafka's queue and ``close`` for the
    producer to close.
    """

    def __init__(self, settings: dict[str, Any], timeout: float):
        check_gevent_patched()
        self.module = import_confluent_kafka()
        self.timeout = timeout
        self._settings = settings
        self._reports = Reports()
        self._producer: Any = None
        self._inside = Semaphore()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``producer.<method>(*args, **kwargs)``, the producer created first; librdkafka's refusal of the
        settings is ProduceFailed."""
        try:
            with self._inside:
                return getattr(self._created(), method)(*args, **kwargs)
        finally:
            self._reports.drain()

    def call_in_thread(self, method: str, *args: Any, wait: float) -> Any:
        """``producer.<method>(*args)`` in gevent's thread pool, for a call that blocks its OS thread; the
        greenlet waits for it cooperatively, at most `wait` seconds (gevent.Timeout past it)."""
        try:
            with self._inside:
                return get_hub().threadpool.spawn(getattr(self._created(), method), *args).get(timeout=wait)
        finally:
            self._reports.drain()

    def _created(self) -> Any:
        if self._producer is None:
            reports = self._reports
            try:
                self._producer = self.module.Producer({**self._settings, "logger": reports, "error_cb": reports.error})
            except self.module.KafkaException as exc:
                raise ProduceFailed(f"librdkafka refused the producer settings: {exc.args[0].str()}") from None
        return self._producer

    def produce(self, deadline: float, topic: str, **record: Any) -> None:
        """Queue one record; while librdkafka's queue is full, serve it and wait cooperatively, until
        `deadline` (time.monotonic())."""
        while True:
            try:
                self.call("produce", topic, **record)
                return
            except BufferError:
                self.call("poll", 0)
            except self.module.KafkaException as exc:
                error = exc.args[0] if exc.args else exc
                raise ProduceFailed(error.str() if hasattr(error, "str") else str(error)) from None
            if time.monotonic() >= deadline:
                raise ProduceFailed(f"librdkafka's queue stayed full for {self.timeout:.1f} s")
            gevent.sleep(_IDLE_LONGEST)

    def cause(self) -> str:
        """``; librdkafka's last error: ...`` when it reported one, to end a failure's message with."""
        last = self._reports.last_error
        return f"; librdkafka's last error: {last}" if last else ""

    def close(self, timeout: float) -> None:
        """Drop what is still queued, then close the producer in the thread pool (its ``close()`` flushes
        without a timeout), waiting at most `timeout` seconds; a failure is logged, never raised."""
        if not self._inside.acquire(timeout=timeout):
            logger.warning("the librdkafka producer stayed busy for %.1f s; not closed", timeout)
            return
        try:
            producer, self._producer = self._producer, None
            if producer is None:
                return
            producer.purge()
            producer.poll(0)
            get_hub().threadpool.spawn(producer.close).get(timeout=timeout)
        except gevent.Timeout:
            logger.warning("closing the librdkafka producer took over %.1f s; leaving it to finish", timeout)
        except Exception:
            logger.warning("closing the librdkafka producer failed", exc_info=True)
        finally:
            self._inside.release()
            self._reports.drain()

    @property
    def created(self) -> bool:
        return self._producer is not None


class LibrdkafkaRecordProducer:
    """A ProducerHandle whose ``send_all`` waits at most `timeout` seconds for the broker.

    `settings` are librdkafka producer settings (``bootstrap.servers`` at
    least); the producer is created by the first ``send_all``. Safe to share
    between greenlets.
    """

    def __init__(self, settings: dict[str, Any], timeout: float):
        timeout_ms = max(int(timeout * 1000), 1)
        self._handle = ProducerHandle({"message.timeout.ms": timeout_ms, **settings}, timeout)
        self._timeout = timeout

    def send_all(self, records: list[ProducerRecord]) -> None:
        """Produce ``(topic, key, value, headers)`` records, in order; return once the broker
        acknowledged every one, or raise ProduceFailed."""
        handle = self._handle
        deadline = time.monotonic() + self._timeout
        batch = _Batch(len(records))
        for topic, key, value, headers in records:
            handle.produce(deadline, topic, value=value, key=key, headers=headers, on_delivery=batch.delivered)
        idle = _IDLE_FIRST
        while batch.answered < batch.size:
            handle.call("poll", 0)
            if batch.answered >= batch.size:
                break
            if time.monotonic() >= deadline:
                missing = batch.size - batch.answered
                raise ProduceFailed(
                    f"{missing} of {batch.size} record(s) not acknowledged within {self._timeout:.1f} s{handle.cause()}"
                )
            gevent.sleep(idle)
            idle = min(idle * 2, _IDLE_LONGEST)
        if batch.error is not None:
            raise ProduceFailed(f"{batch.error.str()} ({batch.error.name()}){handle.cause()}")

    def close(self, timeout: float) -> None:
        """Drop what is still queued (given up already) and close the producer (see ProducerHandle)."""
        self._handle.close(timeout)

    def __repr__(self) -> str:  # the settings may hold secrets: never shown
        return f"<LibrdkafkaRecordProducer connected={self._handle.created}>"
