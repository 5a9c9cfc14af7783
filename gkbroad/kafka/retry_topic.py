"""RetryTopic: failed attempts parked in a Kafka topic until they are due, so no lane waits for them.

With a processor's ``retry.mode = "topic"``, a message whose handler raised (and
that has attempts left) is written to the Kafka producer's retry topic as a copy
of its record: the original key, value (the bytes it arrived with) and headers,
plus

- ``retry_attempt``: the number of the attempt the copy is for (2 for the first retry);
- ``retry_due``: when it is due, in milliseconds since the epoch;
- ``retry_source_topic``, ``retry_source_partition``, ``retry_source_offset``: where
  the record was first read (kept as they are when a retry fails again);
- one ``retry_error`` per failed attempt so far, ``attempt N: Type: message``.

Only once the broker acknowledged the copy is the message acknowledged, so a
crash between the two reads it again rather than losing it. The pipeline
consumes the retry topic with the same group: the Kafka producer holds a
retry partition (a pause, as a handler's) until its head record is due, hands
the record to the handlers with ``metadata["attempt"]`` set, and decodes it as
its source topic says. After the last attempt the message fails as usual; with
a dead-letter topic its dead letter carries all these headers, so the history
of every attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ..message import Message
from .client import WriterConnection
from .client.admin import KafkaRequestError
from .dead_letter import DeadLetter, DeadLetterError, UnwritableRecord, describe_reason, original_record

__all__ = ["RetryTopic", "due_ms", "retry_attempt", "retry_record", "source_topic"]

logger = logging.getLogger(__name__)

ATTEMPT, DUE, ERROR = "retry_attempt", "retry_due", "retry_error"
SOURCE = ("retry_source_topic", "retry_source_partition", "retry_source_offset")
_REPLACED = (ATTEMPT, DUE, *SOURCE)


class RetryTopic:
    """Writes failed attempts to `topic` and waits for the broker (through a DeadLetter writer).

    A service of the pipeline: given `create` (the consumer's library's topic creation,
    WriterConnection.create_topic), start() creates the topic with `partitions` partitions when it
    does not exist; a writer that gave up reports to the pipeline."""

    def __init__(
        self,
        topic: str,
        writer: DeadLetter,
        *,
        create: Callable[[str, int, float], bool] | None,
        partitions: int,
        timeout: float = 10.0,
    ):
        self.topic = topic
        self.writer = writer
        self._create = create
        self._partitions = partitions
        self._timeout = timeout

    @classmethod
    def from_options(cls, options: dict[str, Any], connection: WriterConnection, group_name: str) -> RetryTopic:
        """The retry topic of a validated `retry_topic` option of the Kafka producer: written, and created
        (``create``), through the consumer's library with the writer's connection settings."""
        settings = connection.producer_settings("gkbroad-retry", options["client"])
        writer = DeadLetter(
            options["topic"],
            settings,
            library=connection.library,
            group_name=group_name,
            max_attempts=options["max_attempts"],
            backoff=options["backoff"],
            timeout=options["timeout"],
            kind="retry record",
        )
        return cls(
            options["topic"],
            writer,
            create=partial(connection.create_topic, settings) if options["create"] else None,
            partitions=options["partitions"],
            timeout=options["timeout"] / 1000,
        )

    # ------------------------------------------------------------ service

    def supervise(self, report: Callable[[str], None]) -> None:
        self.writer.supervise(report)

    def report_retries(self, observer: Callable[[str, int], None]) -> None:
        """Call ``observer("topic", count)`` after each write of failed attempts the broker acknowledged
        (the pipeline passes its hooks' after_retry)."""
        self.writer.on_written = partial(observer, "topic")

    def start(self) -> None:
        """Create the topic first when asked to (before the group subscribes to it)."""
        if self._create is None:
            return
        try:
            created = self._create(self.topic, self._partitions, self._timeout)
        except KafkaRequestError as exc:
            logger.warning("could not create the retry topic %r (%s); retries wait until it exists", self.topic, exc)
            return
        if created:
            logger.info("created the retry topic %r with %d partition(s)", self.topic, self._partitions)

    def stop(self, timeout: float) -> bool:
        return self.writer.stop(timeout)

    # ------------------------------------------------------------ writing

    def write(self, message: Message, delay: float) -> None:
        """Park `message` (failed: its reason is the attempt's error) until `delay` seconds from now;
        returns once the broker acknowledged it. Raises DeadLetterError when the write failed for good."""
        attempt = int(message.metadata.get("attempt", 1))
        try:
            record = retry_record(message, attempt, int((time.time() + delay) * 1000))
        except UnwritableRecord as exc:
            raise DeadLetterError(f"cannot write a retry record to {self.topic!r}: {exc}") from None
        self.writer.write([record])

    def __repr__(self) -> str:  # never the client settings: they may hold secrets
        return f"<RetryTopic topic={self.topic!r}>"


def retry_record(
    message: Message, attempt: int, due: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the retry-topic copy of `message`, whose `attempt` just failed."""
    (topic, partition, offset), key, value, headers = original_record(message)
    source = [(name, header) for name, header in headers if name in SOURCE]
    if len(source) != len(SOURCE):  # first read from its own topic
        source = list(zip(SOURCE, (topic.encode(), str(partition).encode(), str(offset).encode()), strict=True))
    kept = [(name, header) for name, header in headers if name not in _REPLACED]
    error = f"attempt {attempt}: {describe_reason(message.failure_reason)}"
    return (
        key,
        value,
        kept
        + source
        + [(ATTEMPT, str(attempt + 1).encode()), (DUE, str(due).encode()), (ERROR, error.encode("utf-8", "replace"))],
    )


def _header(record: Any, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value) if value is not None else None
    return None


def due_ms(record: Any) -> int | None:
    """When a retry-topic record is due (ms since the epoch); None without a readable header."""
    value = _header(record, DUE)
    return int(value) if value is not None and value.isdigit() else None


def retry_attempt(record: Any) -> int:
    """The attempt a retry-topic record is for (1 without a readable header)."""
    value = _header(record, ATTEMPT)
    return int(value) if value is not None and value.isdigit() else 1


def source_topic(record: Any) -> str | None:
    """The topic a retry-topic record was first read from."""
    value = _header(record, SOURCE[0])
    return value.decode("utf-8", "replace") if value is not None else None
