"""In-memory OpenTelemetry exporters for tests.

A process has one global tracer provider (a second ``set_tracer_provider`` is
ignored), so each test module adds its own exporter to it instead of setting one.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def span_exporter() -> InMemorySpanExporter:
    """An exporter that receives every span this process ends from now on."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "a non-SDK tracer provider was set first"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def of_trace(spans: Iterable[ReadableSpan], trace_id: int) -> dict[str, ReadableSpan]:
    """The spans of one trace by name (the last one of each name)."""
    return {s.name: s for s in spans if s.context is not None and s.context.trace_id == trace_id}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id
