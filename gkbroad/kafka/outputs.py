"""Output records: what handlers write to Kafka, and the writer that delivers them at least once.

A handler (``handle_message``, ``handle_batch``) calls
``add_output(message, topic, value, key=..., headers=...)``: the record is
kept with the message, in ``message.metadata["outputs"]``, and written when
the message is acknowledged. Tying an output to its input message is what
lets the Kafka producer decide when it may be written and when the input's
offset may be committed:

- at least once (the default): the acknowledgement of a message waits until
  the broker acknowledged its outputs (``OutputWriter.send``), so the
  committed offset never passes a record whose outputs are not stored; a
  crash between the two writes them again;
- exactly once (the ``exactly_once`` option, gkbroad.kafka.transactions): the
  outputs go into the transaction that commits the input's offset.

The outputs of a message that ends failed are dropped (its dead letter, when
there is one, takes their place), and so are those of an attempt that raised
and was retried (``processors.default.retry``): only the last attempt's count. ``OutputWriter`` also writes dead letters
(gkbroad.kafka.dead_letter) and any other records gkbroad produces itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, NoReturn

import gevent

from ..engine.backoff import backoff_delay
from ..errors import GkbroadError, NotAcknowledged
from ..message import Message
from .client import ProduceFailed, WriterConnection, record_producer

__all__ = [
    "ATTEMPT_KEY",
    "OUTPUTS_KEY",
    "OutputRecord",
    "OutputWriter",
    "OutputsNotWritten",
    "add_output",
    "outputs_of",
]

logger = logging.getLogger(__name__)

OUTPUTS_KEY = "outputs"  # the metadata entry that holds a message's output records
ATTEMPT_KEY = "outputs_attempt"  # the metadata entry naming the attempt that added them
MAX_BACKOFF = 30.0  # seconds: the longest wait between two attempts of a write

Header = tuple[str, bytes]


class OutputRecord(NamedTuple):
    """One record to produce: `key` and `value` are bytes (or None), `headers` (name, bytes) pairs."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class OutputsNotWritten(NotAcknowledged):
    """Records could not be written; the messages they belong to are not acknowledged."""


def add_output(
    message: Message,
    topic: str,
    value: bytes | str | None,
    *,
    key: bytes | str | None = None,
    headers: Iterable[tuple[str, bytes | str]] | None = None,
) -> Message:
    """Write a record to `topic` once `message` is acknowledged (as part of its transaction with
    exactly-once on). Strings are encoded as UTF-8. Returns the message, so a handler can chain it."""
    if not isinstance(topic, str) or not topic:
        raise GkbroadError(f"an output's topic must be a non-empty string, got {topic!r}")
    record = OutputRecord(
        topic,
        _as_bytes(key, "key"),
        _as_bytes(value, "value"),
        [(name, _as_bytes(header, f"header {name!r}") or b"") for name, header in headers or ()],
    )
    metadata = message.metadata
    attempt = metadata.get("attempt")  # set by the processors' retries, else absent
    if metadata.get(ATTEMPT_KEY) != attempt or OUTPUTS_KEY not in metadata:
        metadata[OUTPUTS_KEY], metadata[ATTEMPT_KEY] = [], attempt
    metadata[OUTPUTS_KEY].append(record)
    return message


def may_have_outputs(messages: list[Message]) -> bool:
    """Whether a handler added an output to any of `messages`: a key test per message, so that the
    acknowledgement of messages without outputs (the usual case) costs next to nothing."""
    return any(OUTPUTS_KEY in message.metadata for message in messages)


def outputs_of(message: Message) -> list[OutputRecord]:
    """The records handlers added to `message` in its last attempt (none for a failed message)."""
    metadata = message.metadata
    if message.is_failed or metadata.get(ATTEMPT_KEY) != metadata.get("attempt"):
        return []
    return list(metadata.get(OUTPUTS_KEY) or ())


def _as_bytes(value: Any, part: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise GkbroadError(f"an output's {part} must be bytes, str or None, got a {type(value).__name__}")


class OutputWriter:
    """Writes records and returns once the broker acknowledged them all, trying again on failure.

    `client`: producer settings in the names of `library` (kafka-python's
    KafkaProducer, ``bootstrap_servers`` at least, or librdkafka's,
    ``bootstrap.servers`` at least). Each attempt may take `timeout` ms; `max_attempts` attempts are
    made, `backoff` ms apart at first, doubling (with jitter). After the last
    failed attempt the writer is broken for good: it reports the failure
    (``supervise``) and raises `error` now and on every later ``send``, so
    nothing that waited for these records is ever acknowledged. `what` names
    the records in messages ("output(s)", "dead letter(s)").
    """

    def __init__(
        self,
        client: dict[str, Any],
        *,
        library: str = "kafka-python",
        what: str = "output(s)",
        error: type[NotAcknowledged] = OutputsNotWritten,
        max_attempts: int = 3,
        backoff: int = 1000,
        timeout: int = 10000,
    ):
        self.what = what
        self.error = error
        self.max_attempts = max_attempts
        self.backoff = backoff / 1000.0
        self.failure: str | None = None  # why writes stopped for good
        self._producer = record_producer(library, client, timeout / 1000.0)
        self._report: Callable[[str], None] | None = None

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], connection: WriterConnection, client_id: str, **kwargs: Any
    ) -> OutputWriter:
        """A writer for validated writer options (``client``, ``max_attempts``, ``backoff``,
        ``timeout``): it connects with the connection settings of `connection` (the consumer's
        `client`, and its library), updated with its own ``client``."""
        return cls(
            connection.producer_settings(client_id, options.get("client")),
            library=connection.library,
            max_attempts=options["max_attempts"],
            backoff=options["backoff"],
            timeout=options["timeout"],
            **kwargs,
        )

    # ------------------------------------------------------------ service

    def supervise(self, report: Callable[[str], None]) -> None:
        self._report = report
        if self.failure is not None:
            report(self.failure)

    def start(self) -> None:
        """Nothing to start: the first write connects."""

    def stop(self, timeout: float) -> bool:
        """Close the producer (every write was already acknowledged or given up)."""
        self._producer.close(timeout)
        return self.failure is None

    # ------------------------------------------------------------ writing

    def send(self, records: list[OutputRecord]) -> None:
        """Write `records` in order; return once the broker acknowledged them all.
        Raises `error` when that failed `max_attempts` times (or failed for good before)."""
        if self.failure is not None:
            raise self.error(self.failure)
        if not records:
            return
        topics = ", ".join(sorted({repr(record.topic) for record in records}))
        for attempt in range(1, self.max_attempts + 1):
            if self.failure is not None:  # another greenlet gave up meanwhile
                raise self.error(self.failure)
            try:
                self._producer.send_all(list(records))
                return
            except ProduceFailed as exc:
                if attempt == self.max_attempts:
                    self.fail(f"writing {len(records)} {self.what} to {topics} failed {attempt} times, last: {exc}")
                delay = backoff_delay(attempt, self.backoff, MAX_BACKOFF)
                logger.warning(
                    "writing %d %s to %s failed (attempt %d of %d): %s; trying again in %.1f s",
                    len(records),
                    self.what,
                    topics,
                    attempt,
                    self.max_attempts,
                    exc,
                    delay,
                )
                gevent.sleep(delay)

    def fail(self, reason: str) -> NoReturn:
        """Give up for good: report to the pipeline (once) and raise `error`."""
        if self.failure is None:
            self.failure = reason
            logger.error("%s; the messages they belong to are no longer acknowledged", reason)
            if self._report is not None:
                self._report(reason)
        raise self.error(self.failure)

    def __repr__(self) -> str:  # never the client settings: they may hold secrets
        return f"<OutputWriter {self.what} failed={self.failure is not None}>"
