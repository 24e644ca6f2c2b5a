"""Tracing at the edges: W3C trace context carried in NATS message headers.

The core depends on the OpenTelemetry *API* only; with no SDK configured every
span is a no-op. :func:`configure` (called by the CLI and the service) installs
the SDK when the standard ``OTEL_*`` variables ask for an exporter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

__all__ = ["configure", "extract", "inject", "tracer"]

tracer = trace.get_tracer("swarm-memory")


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers carrying the current trace context (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {} if headers is None else headers
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(headers or {}))


_configured = False


def configure(service_name: str = "swarm-memory") -> None:
    """Install the OTel SDK if ``OTEL_TRACES_EXPORTER`` asks for one (console or otlp)."""
    global _configured  # noqa: PLW0603 - one process-wide provider
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    if _configured or exporter_name in ("", "none"):
        return
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - SDK only at the edge
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if exporter_name == "console":
        import sys  # noqa: PLC0415

        exporter = ConsoleSpanExporter(out=sys.stderr)  # stdout stays clean for --json
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError:
            import sys  # noqa: PLC0415

            print(
                "warning: OTEL_TRACES_EXPORTER=otlp needs the exporter package: "
                "pip install opentelemetry-exporter-otlp-proto-http",
                file=sys.stderr,
            )
            return
        exporter = OTLPSpanExporter()
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def attrs(**values: Any) -> dict[str, Any]:
    return {f"swarm.{k}": v for k, v in values.items() if v is not None}


def configure_logging(level: str = "info", *, json_logs: bool | None = None) -> None:
    """structlog to stderr: JSON lines (with trace/span ids) or console, at ``level``.

    ``SWARM_LOG_LEVEL`` and ``SWARM_LOG_FORMAT`` (``json``/``console``) override.
    """
    import logging  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    level = os.environ.get("SWARM_LOG_LEVEL", level).upper()
    fmt = os.environ.get("SWARM_LOG_FORMAT")
    as_json = (fmt == "json") if fmt else bool(json_logs)

    def add_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event["trace_id"] = format(ctx.trace_id, "032x")
            event["span_id"] = format(ctx.span_id, "016x")
        return event

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            add_trace,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
