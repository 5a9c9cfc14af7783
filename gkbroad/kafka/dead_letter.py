"""DeadLetter: failed messages written to a Kafka topic before their offsets may be committed.

Each failed message becomes one record of the dead-letter topic with the
original key, value (the bytes the record arrived with) and headers, plus the
headers ``source_topic``, ``source_partition``, ``source_offset``,
``source_group`` and ``error`` (the failure reason's type and message, cut to
ERROR_LIMIT characters), as Karafka names them, so tools that read Karafka's
dead letters read these too.

``send(messages)`` returns only once the broker acknowledged every record.
A failed write is tried again after a backoff, up to ``max_attempts`` times;
then the DeadLetter is broken for good: it reports the failure to the pipeline
(when it is the Kafka producer's ``dead_letter`` service) and raises
DeadLetterError, now and on every later send, so the messages are never
acknowledged and the committed offset never passes a failure that was not
written. Raised from ``handle_failed``, DeadLetterError stops the pipeline the
same way (it is a NotAcknowledged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import GkbroadError, NotAcknowledged
from ..message import Message
from .client import WriterConnection
from .outputs import OutputRecord, OutputWriter

__all__ = ["DeadLetter", "DeadLetterError", "UnwritableRecord", "dead_letter_record", "original_record"]

ERROR_LIMIT = 1000  # characters of the failure reason kept in the `error` header
SOURCE_HEADERS = ("source_topic", "source_partition", "source_offset", "source_group", "error")


class DeadLetterError(NotAcknowledged):
    """Failed messages could not be written to the dead-letter topic; they are not acknowledged."""


class UnwritableRecord(GkbroadError, ValueError):
    """A failed message that cannot become a dead letter: not a Kafka message, or its key or value is not bytes."""


class DeadLetter:
    """Writes failed Kafka messages to `topic` and waits for the broker's acknowledgement.

    `client`: producer settings in the names of `library` (see OutputWriter).
    `group_name` fills the ``source_group`` header. Each attempt of a
    write may take `timeout` ms; `max_attempts` attempts are made, `backoff` ms
    apart at first, doubling (with jitter) after each failure (an OutputWriter
    does the writing). From ``handle_failed``:
    ``self.dead_letter.send(messages); return messages``. `kind` names what it
    writes in its messages (the retry topic's writer is one too).
    """

    def __init__(
        self,
        topic: str,
        client: dict[str, Any],
        *,
        library: str = "kafka-python",
        group_name: str | None = None,
        max_attempts: int = 3,
        backoff: int = 1000,
        timeout: int = 10000,
        kind: str = "dead letter",
    ):
        self.topic = topic
        self.kind = kind
        self.group_name = group_name
        self.on_written: Callable[[int], None] | None = None  # told how many records each write wrote
        self._writer = OutputWriter(
            client,
            library=library,
            what=f"{kind}(s)",
            error=DeadLetterError,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
        )

    @classmethod
    def from_options(cls, options: dict[str, Any], connection: WriterConnection, group_name: str) -> DeadLetter:
        """The writer for a validated `dead_letter` option of the Kafka producer: it connects with
        the connection settings of `connection` (the consumer's `client`), updated with its own."""
        return cls(
            options["topic"],
            connection.producer_settings("gkbroad-dead-letter", options["client"]),
            library=connection.library,
            group_name=group_name,
            max_attempts=options["max_attempts"],
            backoff=options["backoff"],
            timeout=options["timeout"],
        )

    @property
    def failure(self) -> str | None:
        """Why writes stopped for good (None while they work)."""
        return self._writer.failure

    # ------------------------------------------------------------ service

    def supervise(self, report: Callable[[str], None]) -> None:
        self._writer.supervise(report)

    def report_dead_letters(self, observer: Callable[[int], None]) -> None:
        """Call ``observer(count)`` after each write the broker acknowledged (the pipeline passes its
        hooks' after_dead_letter)."""
        self.on_written = observer

    def start(self) -> None:
        """Nothing to start: the first write connects."""

    def stop(self, timeout: float) -> bool:
        """Close the producer (every write was already acknowledged or given up)."""
        return self._writer.stop(timeout)

    # ------------------------------------------------------------ writing

    def records(self, messages: list[Message]) -> list[OutputRecord]:
        """The dead letters of `messages`; the writer breaks (and raises DeadLetterError) on a message
        that cannot become one."""
        try:
            return [OutputRecord(self.topic, *dead_letter_record(message, self.group_name)) for message in messages]
        except UnwritableRecord as exc:
            self._writer.fail(f"cannot write a {self.kind} to {self.topic!r}: {exc}")

    def send_records(self, records: list[OutputRecord]) -> None:
        """Write dead letters made by ``records``; return once the broker acknowledged them all."""
        if records:
            self._writer.send(records)
            if self.on_written is not None:
                self.on_written(len(records))

    def send(self, messages: list[Message]) -> None:
        """Write one dead letter per message, in order; return once the broker acknowledged them all.
        Raises DeadLetterError when that failed `max_attempts` times (or failed for good before)."""
        if self.failure is not None:
            raise DeadLetterError(self.failure)
        if messages:
            self.send_records(self.records(messages))

    def write(self, records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        """Write ``(key, value, headers)`` records to the topic, in order, with the attempts and backoff of
        `send`; returns once the broker acknowledged them all, raises DeadLetterError when that failed for
        good."""
        self.send_records([OutputRecord(self.topic, *record) for record in records])

    def __repr__(self) -> str:  # never the client settings: they may hold secrets
        return f"<DeadLetter topic={self.topic!r} group={self.group_name!r} kind={self.kind!r}>"


def dead_letter_record(
    message: Message, group_name: str | None
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter of a failed Kafka message (see `original_record`);
    raises UnwritableRecord for a message that is not a Kafka message or whose key or value is not bytes.
    """
    (topic, partition, offset), key, value, headers = original_record(message)
    headers = [(name, header) for name, header in headers if name not in SOURCE_HEADERS]
    headers += [
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("source_group", (group_name or "").encode()),
        ("error", describe_reason(message.failure_reason).encode("utf-8", "replace")),
    ]
    return key, value, headers


def original_record(
    message: Message,
) -> tuple[tuple[str, int, int], bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """((topic, partition, offset), key, value, headers) of the record a Kafka message came from.

    Key and value are the bytes the record arrived with: ``metadata["raw_key"]`` /
    ``["raw_value"]`` when decoding put them there, else the record's own (the
    ConsumerRecord in `data` for the "record" format; ``metadata["key"]`` and
    `data` for "value"). Raises UnwritableRecord for a message that is not a Kafka
    message or whose key or value is not bytes.
    """
    source = message.acknowledger.data
    if not (isinstance(source, tuple) and len(source) >= 3):
        raise UnwritableRecord(f"not a Kafka message (acknowledger data {source!r})")
    topic, partition, offset = source[:3]
    metadata, data = message.metadata, message.data
    if "topic" in metadata:  # the "value" format
        key, value, headers = metadata.get("key"), data, metadata.get("headers") or []
    else:
        key, value, headers = data.key, data.value, data.headers or []
    key = as_bytes(metadata.get("raw_key", key), "key", offset)
    value = as_bytes(metadata.get("raw_value", value), "value", offset)
    return (topic, partition, offset), key, value, [(name, header) for name, header in headers]


def as_bytes(value: Any, part: str, offset: int) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise UnwritableRecord(f"the {part} of offset {offset} is a {type(value).__name__}, not the record's bytes")


def describe_reason(reason: Any) -> str:
    text = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."
