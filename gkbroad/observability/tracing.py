"""OpenTelemetry consumer spans around handle_message and handle_batch (the ``tracing`` option).

Needs the ``otel`` extra (``opentelemetry-api``); the spans go wherever the
application's TracerProvider sends them (the API alone makes no-op spans).
Each handle_message call gets a CONSUMER span named ``process <topic>`` with
the messaging attributes of the OpenTelemetry semantic conventions; its parent
is the context a producer put in the record's ``traceparent`` header (W3C,
through the globally configured propagator), so one trace runs from the
producer across Kafka into the handler. The span is the current span while the
handler runs, on the stage's greenlet or in the executor's thread, so spans a
handler opens (an instrumented HTTP client's) are its children. Each
handle_batch call gets a span linked to the spans of its messages.

Dead letters keep the original record's headers, ``traceparent`` included, so
whoever reads the dead-letter topic continues the producer's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .. import __version__
from ..message import Message
from .hook_protocols import AfterPipelineStart, AroundHandleBatch, AroundHandleMessage

__all__ = ["SPAN_CONTEXT", "Tracing", "record_facts"]

SPAN_CONTEXT = "span_context"
"""``message.metadata`` key of the SpanContext of the message's last handle_message span."""

REASON_LIMIT = 200  # characters of a failure reason kept in a span's status description

Headers = list[tuple[str, bytes]]


class _HeaderGetter(Getter[Headers]):
    """Reads W3C trace headers out of Kafka's (name, bytes) header list."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name.lower() == key and value is not None]
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _HeaderGetter()


def record_facts(message: Message) -> tuple[str | None, int | None, int | None, Headers]:
    """(topic, partition, offset, headers) of a Kafka message in either message format, or Nones and []."""
    metadata = message.metadata
    if "topic" in metadata:
        return metadata["topic"], metadata.get("partition"), metadata.get("offset"), metadata.get("headers") or []
    record = message.data
    if hasattr(record, "topic") and hasattr(record, "headers"):
        return record.topic, record.partition, record.offset, list(record.headers or ())
    return None, None, None, []


class Tracing(AfterPipelineStart, AroundHandleMessage, AroundHandleBatch):
    """Consumer spans for one pipeline; `tracer_provider` defaults to the global one."""

    def __init__(self, pipeline_name: str, tracer_provider: trace.TracerProvider | None = None):
        self.pipeline_name = pipeline_name
        self.tracer = trace.get_tracer("gkbroad", __version__, tracer_provider=tracer_provider)
        self.group: str | None = None

    def after_pipeline_start(self, pipeline: Any) -> None:
        groups = [group["group"] for group in pipeline.status()["groups"] if group.get("group")]
        self.group = groups[0] if groups else None

    def around_handle_message(self, message: Message, call: Callable[..., Any], function: Any, *args: Any) -> Any:
        topic, partition, offset, headers = record_facts(message)
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic or self.pipeline_name,
        }
        if partition is not None:
            attributes["messaging.destination.partition.id"] = str(partition)
        if offset is not None:
            attributes["messaging.kafka.offset"] = offset
        if self.group:
            attributes["messaging.consumer.group.name"] = self.group
        if "attempt" in message.metadata:
            attributes["gkbroad.attempt"] = message.metadata["attempt"]
        parent = propagate.extract(headers, getter=_GETTER) if headers else None
        span = self.tracer.start_span(f"process {topic or self.pipeline_name}", parent, SpanKind.CONSUMER, attributes)
        message.metadata[SPAN_CONTEXT] = span.get_span_context()
        result = _call_in_span(span, call, function, args)
        if isinstance(result, Message) and result.is_failed:
            span.set_status(Status(StatusCode.ERROR, f"{result.failure_reason!s:.{REASON_LIMIT}}"))
        span.end()
        return result

    def around_handle_batch(
        self, batcher: str, messages: list[Message], call: Callable[..., Any], function: Any, *args: Any
    ) -> Any:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": len(messages),
            "gkbroad.batcher": batcher,
        }
        if self.group:
            attributes["messaging.consumer.group.name"] = self.group
        links = [Link(span_context) for span_context in _span_contexts(messages)]
        span = self.tracer.start_span(f"process {batcher}", None, SpanKind.CONSUMER, attributes, links=links)
        result = _call_in_span(span, call, function, args)
        if isinstance(result, list):
            failed = sum(1 for m in result if isinstance(m, Message) and m.is_failed)
            if failed:
                span.set_status(Status(StatusCode.ERROR, f"{failed} of {len(result)} messages failed"))
        span.end()
        return result


def _call_in_span(span: trace.Span, call: Callable[..., Any], function: Any, args: tuple[Any, ...]) -> Any:
    """``call(function, *args)`` with `span` current; what it raises is recorded, the span ended, and raised.

    Spelled out rather than ``start_as_current_span``, whose generator-based
    context manager costs more than the rest of a no-op span put together."""
    token = context.attach(trace.set_span_in_context(span))
    try:
        return call(function, *args)
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc!s:.{REASON_LIMIT}}"))
        span.end()
        raise
    finally:
        context.detach(token)


def _span_contexts(messages: Iterable[Message]) -> list[trace.SpanContext]:
    found = []
    for message in messages:
        context = message.metadata.get(SPAN_CONTEXT)
        if isinstance(context, trace.SpanContext) and context.is_valid:
            found.append(context)
    return found
