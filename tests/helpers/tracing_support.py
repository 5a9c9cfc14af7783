"""The OpenTelemetry SDK for the tracing tests: one global TracerProvider per test process, whose
spans an in-memory exporter keeps, and W3C traceparent headers made by a real producer span."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """The exporter of the process's global SDK provider (installed on first use), emptied."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter


def producer_headers(name: str) -> tuple[trace.SpanContext, list[tuple[str, bytes]]]:
    """A PRODUCER span `name` (ended) and the Kafka headers that carry its context."""
    tracer = trace.get_tracer("tests.producer")
    with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    return span.get_span_context(), [(key, value.encode()) for key, value in carrier.items()]
