"""Decoding and validating record keys and values, where a bad record cannot stop anything.

kafka-python can deserialize inside its fetcher, but an exception there breaks
the poll loop (it retries the same record forever). gkbroad decodes instead
when the Kafka producer stage builds a message: a record whose key or value
cannot be decoded, or whose value the topic's `value_schema` refuses, becomes a
failed message. It goes through handle_failed with the raw bytes in
``message.metadata["raw_key"]`` / ``["raw_value"]``, and its offset is
acknowledged like any other, so the partition keeps moving.

Decoding runs in the producer greenlet rather than in the processors because
both share one thread under gevent: moving the work would not make it cheaper,
and doing it here needs no hook in the engine (see Decoding in docs/guides/messages.md).
A null key or value (a tombstone) stays None: there is nothing to decode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from marshmallow import Schema, ValidationError, fields

from ..config.fields import import_or_error
from ..errors import GkbroadError
from ..message import Message

__all__ = ["DecodeError", "Decoding", "DeserializerField", "SchemaClassField", "TopicDecoder"]

logger = logging.getLogger(__name__)


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")


# Deserializer option value -> function of the raw bytes (None: keep the bytes).
BUILTIN_DESERIALIZERS: dict[str, Callable[[bytes], Any] | None] = {"bytes": None, "str": _utf8, "json": json.loads}


class DecodeError(GkbroadError):
    """A record's key or value could not be decoded or validated.

    Kept as the failed message's ``failure_reason``. `part` is "key" or
    "value"; `errors` holds marshmallow's messages when the schema refused the
    value (else None); the original exception is the ``__cause__``.
    """

    def __init__(self, description: str, part: str, errors: Any = None):
        super().__init__(description)
        self.part = part
        self.errors = errors


class DeserializerField(fields.Field[str | Callable[[bytes], Any]]):
    """`"bytes"`, `"str"`, `"json"`, a callable, or a dotted path to one (loaded as the function)."""

    doc_type = '`"bytes"` \\| `"str"` \\| `"json"` \\| callable or dotted path'
    default_error_messages = {
        "invalid": 'must be "bytes", "str", "json", a callable of the raw bytes, or a dotted path to one',
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | Callable[[bytes], Any]:
        if isinstance(value, str) and value in BUILTIN_DESERIALIZERS:
            return value
        if isinstance(value, str) and (":" in value or "." in value):
            value = import_or_error(value)
        if not callable(value):
            raise self.make_error("invalid")
        return cast(Callable[[bytes], Any], value)  # a deserializer function: checked callable above


class SchemaClassField(fields.Field[Schema]):
    """A marshmallow Schema subclass or a dotted path to one; loaded as an instance, built once."""

    doc_type = "marshmallow Schema class or dotted path"
    default_error_messages = {"invalid": "must be a marshmallow Schema subclass or a dotted path to one"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Schema:
        if isinstance(value, str):
            value = import_or_error(value)
        if not (isinstance(value, type) and issubclass(value, Schema)):
            raise self.make_error("invalid")
        return value()


def _function(deserializer: str | Callable[[bytes], Any]) -> Callable[[bytes], Any] | None:
    """The function of a validated deserializer option (None: keep the bytes)."""
    return BUILTIN_DESERIALIZERS[deserializer] if isinstance(deserializer, str) else deserializer


def _name(deserializer: str | Callable[[bytes], Any]) -> str:
    if isinstance(deserializer, str):
        return repr(deserializer)
    return getattr(deserializer, "__qualname__", None) or repr(deserializer)


class TopicDecoder:
    """Decodes the records of one topic as its validated options say."""

    def __init__(self, topic_options: dict[str, Any]):
        self.topic = topic_options["name"]
        self.key_option = topic_options["key_deserializer"]
        self.value_option = topic_options["value_deserializer"]
        self.key_deserializer = _function(self.key_option)
        self.value_deserializer = _function(self.value_option)
        self.value_schema: Schema | None = topic_options["value_schema"]

    @property
    def active(self) -> bool:
        return not (self.key_deserializer is None and self.value_deserializer is None and self.value_schema is None)

    def decode(self, record: Any) -> tuple[Any, Any]:
        """(key, value) of the record, decoded and validated; raises DecodeError."""
        where = f"{record.topic}[{record.partition}] offset {record.offset}"
        key = self._deserialize("key", self.key_option, self.key_deserializer, record.key, where)
        value = self._deserialize("value", self.value_option, self.value_deserializer, record.value, where)
        if self.value_schema is not None and value is not None:
            try:
                value = self.value_schema.load(value)
            except ValidationError as exc:
                raise DecodeError(
                    f"value of {where}: value_schema {type(self.value_schema).__name__} refused it: {exc.messages}",
                    "value",
                    exc.messages,
                ) from exc
        return key, value

    @staticmethod
    def _deserialize(
        part: str, option: Any, function: Callable[[bytes], Any] | None, raw: bytes | None, where: str
    ) -> Any:
        if function is None or raw is None:
            return raw
        try:
            return function(raw)
        except Exception as exc:
            raise DecodeError(
                f"{part} of {where}: {part}_deserializer {_name(option)} failed: {type(exc).__name__}: {exc}", part
            ) from exc


class Decoding:
    """The decoders of a Kafka producer's topics, applied to each message it builds."""

    def __init__(self, topics: Iterable[dict[str, Any]], message_format: str):
        decoders = (TopicDecoder(options) for options in topics)
        self.decoders = {decoder.topic: decoder for decoder in decoders if decoder.active}
        self.message_format = message_format

    def __bool__(self) -> bool:
        """False when no topic decodes anything: messages are then left exactly as built."""
        return bool(self.decoders)

    def apply(self, message: Message, record: Any, topic: str | None = None) -> Message:
        """Put the decoded key and value into `message`, or fail it with a DecodeError; `topic` (default:
        the record's) names the topic whose options decode it (a retry topic's records: their source's)."""
        decoder = self.decoders.get(topic or record.topic)
        if decoder is None:
            return message
        # The raw bytes stay reachable whatever happens next: handle_failed and
        # dead letters need them for a record that fails later in a handler too.
        message.metadata["raw_key"] = record.key
        message.metadata["raw_value"] = record.value
        try:
            key, value = decoder.decode(record)
        except DecodeError as exc:
            logger.warning("%s; the record goes to handle_failed", exc)
            return message.failed(exc)
        if self.message_format == "record":
            message.data = record._replace(key=key, value=value)
        else:
            message.data = value
            message.metadata["key"] = key
        return message
