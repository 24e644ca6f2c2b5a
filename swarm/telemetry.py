"""Tracing and metrics at the edges: W3C trace context carried in NATS message headers.

The core depends on the OpenTelemetry *API* only; with no SDK configured every
span is a no-op and every metric (see :mod:`swarm.metrics`) is dropped.
:func:`configure` (called by the CLI and the service) installs the SDK when the
standard ``OTEL_*`` variables ask for an exporter:

``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``
    ``none`` (the default here), ``console`` (JSON lines on stderr, or appended to
    ``SWARM_TRACES_FILE`` for spans) or ``otlp`` (OTLP over HTTP, configured by
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` and friends); a comma-separated list for both.

``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` (and
``_ARG``), ``OTEL_BSP_*`` and ``OTEL_METRIC_EXPORT_INTERVAL`` are read by the SDK.

One write is one trace across processes::

    swarm.memory.remembered        the agent's call (client)
      inbox.publish                the proposal into the INBOX; carries traceparent
        gate.check                 the gate (one span event per law, with its verdict)
          log.append               the LOG append; the entry carries traceparent
            projector.apply        the projector's batch (fold, stage)
              projector.lancedb    the recall rows written
              projector.duckdb     the DuckDB transaction (a group commit of batches:
                                   one such span in the trace of each)
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import IO, Any, cast

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind

from swarm import metrics

__all__ = [
    "attrs",
    "batch_parent",
    "configure",
    "configure_logging",
    "extract",
    "finish_append",
    "inject",
    "log_ids",
    "start_append",
    "store_write",
    "tracer",
    "tracing_on",
]

tracer = trace.get_tracer("swarm-memory")

#: Links a batch span keeps to the other traced messages of its batch.
MAX_LINKS = 32


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers carrying the current trace context (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {} if headers is None else headers
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(headers or {}))


def attrs(**values: Any) -> dict[str, Any]:
    return {f"swarm.{k}": v for k, v in values.items() if v is not None}


def tracing_on() -> bool:
    """True when this process records spans (an SDK tracer provider is installed)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _sampled(headers: Mapping[str, str]) -> bool:
    """Whether a message's ``traceparent`` (``00-<trace>-<span>-<flags>``) is sampled."""
    parent = headers.get("traceparent", "")
    try:
        return len(parent) == 55 and int(parent[-2:], 16) & 1 == 1
    except ValueError:
        return False


def _is_sampled(ctx: SpanContext | None) -> bool:
    return ctx is not None and ctx.is_valid and ctx.trace_flags.sampled


def batch_parent(headers: Sequence[Mapping[str, str]]) -> tuple[Context, list[Link]]:
    """The parent of a span over a batch of messages, and its links.

    The parent is the first message whose trace is sampled (else the last message),
    so with sampling each sampled write sees the batch that carried it at least as a
    link: up to :data:`MAX_LINKS` other sampled messages are linked.
    """
    sampled: list[Mapping[str, str]] = []
    for h in headers:
        if _sampled(h):
            sampled.append(h)
            if len(sampled) > MAX_LINKS:
                break
    if not sampled:
        return extract(headers[-1] if headers else None), []
    links = (
        [Link(trace.get_current_span(extract(h)).get_span_context()) for h in sampled[1:]]
        if tracing_on()
        else []
    )
    return extract(sampled[0]), links


def start_append(
    parent: SpanContext | None, proposal: Mapping[str, str] | None, entry: dict[str, str]
) -> Span:
    """Start the ``log.append`` span of one accepted event and carry it in ``entry``.

    ``parent`` is the event's ``gate.check``; ``entry`` the log entry's headers, so
    the projector continues the trace from the append. Untraced here, the proposal's
    own trace context (``proposal``) is copied, and the span is a no-op.
    """
    if not (tracing_on() and _is_sampled(parent)):
        for key in ("traceparent", "tracestate"):
            if proposal and key in proposal:
                entry[key] = proposal[key]
        return trace.INVALID_SPAN
    assert parent is not None
    span = tracer.start_span(
        "log.append",
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.PRODUCER,
    )
    propagate.inject(entry, context=trace.set_span_in_context(span))
    return span


def finish_append(span: Span, seq: int | None, *, duplicate: bool) -> None:
    if seq is None:
        span.set_status(trace.StatusCode.ERROR, "append failed")
    else:
        span.set_attributes(attrs(seq=seq, duplicate=duplicate))
    span.end()


@contextlib.contextmanager
def store_write(
    store: str,
    swarm: str | None,
    *,
    parents: Sequence[SpanContext] | None = None,
    **attributes: Any,
) -> Iterator[None]:
    """One projection write to ``store``, timed into ``swarm.projector.apply.latency``.

    Traced as a span ``projector.<store>`` under each sampled span of ``parents`` (the
    batches one group commit writes: each batch's trace shows the transaction), or
    by default under the current span.
    """
    started = time.perf_counter()
    if not tracing_on():
        parents = []
    elif parents is None:
        parents = [trace.get_current_span().get_span_context()]
    spans = [
        tracer.start_span(
            f"projector.{store}",
            context=trace.set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": store, **attrs(**attributes)},
        )
        for parent in [p for p in parents if _is_sampled(p)][:MAX_LINKS]
    ]
    try:
        yield
    except BaseException as err:
        for span in spans:
            span.record_exception(err)
            span.set_status(trace.StatusCode.ERROR, type(err).__name__)
        raise
    finally:
        for span in spans:
            span.end()
    metrics.applied(swarm, store, time.perf_counter() - started)


def log_ids(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``trace_id`` and ``span_id`` from a message's ``traceparent``, for a log line
    written outside any span (e.g. the gate's ``rejected``)."""
    parent = (headers or {}).get("traceparent", "")
    if len(parent) != 55:
        return {}
    return {"trace_id": parent[3:35], "span_id": parent[36:52]}


# -- installing the SDK --------------------------------------------------------------------

_configured = False


def _exporters(variable: str) -> list[str]:
    names = [n.strip().lower() for n in os.environ.get(variable, "none").split(",")]
    return [n for n in names if n and n != "none"]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _AppendLines:
    """A file that takes each span as one line in one ``write(2)`` (``O_APPEND``), so
    the gate's and the projector's processes can share it."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, text: str) -> int:
        return os.write(self._fd, text.encode())

    def flush(self) -> None:
        return None


def configure(service_name: str = "swarm-memory") -> None:
    """Install the OTel SDK for the exporters ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_METRICS_EXPORTER`` ask for (``console``, ``otlp``); once per process."""
    global _configured  # noqa: PLW0603 - one process-wide provider
    if _configured:
        return
    traces, meters = _exporters("OTEL_TRACES_EXPORTER"), _exporters("OTEL_METRICS_EXPORTER")
    if not traces and not meters:
        return
    _configured = True
    from opentelemetry.sdk.resources import (  # noqa: PLC0415 - SDK only at the edge
        OTELResourceDetector,
        Resource,
    )

    defaults: dict[str, str | int] = {
        "service.name": service_name,
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        "process.pid": os.getpid(),
    }
    # Ours are defaults: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
    resource = Resource.create(defaults).merge(OTELResourceDetector().detect())
    if traces:
        _install_tracing(traces, resource)
    if meters:
        _install_metrics(meters, resource)


def _otlp_missing(what: str) -> None:
    _warn(
        f"OTEL_{what}_EXPORTER=otlp needs the exporter package: "
        "pip install opentelemetry-exporter-otlp-proto-http"
    )


def _install_tracing(names: list[str], resource: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporters: list[SpanExporter] = []
    for name in names:
        if name == "console":
            path = os.environ.get("SWARM_TRACES_FILE")
            out = cast(IO[str], _AppendLines(path)) if path else sys.stderr
            # One JSON object per line; stderr, so stdout stays clean for --json.
            exporters.append(
                ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
            )
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                    OTLPSpanExporter,
                )
            except ImportError:
                _otlp_missing("TRACES")
                continue
            exporters.append(OTLPSpanExporter())
        else:
            _warn(f"OTEL_TRACES_EXPORTER={name} is not supported (use console or otlp)")
    if not exporters:
        return
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _install_metrics(names: list[str], resource: Any) -> None:
    from opentelemetry import metrics as otel_metrics  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    exporters: list[MetricExporter] = []
    for name in names:
        if name == "console":
            exporters.append(
                ConsoleMetricExporter(
                    out=sys.stderr, formatter=lambda data: data.to_json(indent=None) + "\n"
                )
            )
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
                    OTLPMetricExporter,
                )
            except ImportError:
                _otlp_missing("METRICS")
                continue
            exporters.append(OTLPMetricExporter())
        else:
            _warn(f"OTEL_METRICS_EXPORTER={name} is not supported (use console or otlp)")
    if not exporters:
        return
    # The export interval: OTEL_METRIC_EXPORT_INTERVAL (ms, default 60000).
    readers = [PeriodicExportingMetricReader(e) for e in exporters]
    provider = MeterProvider(metric_readers=readers, resource=resource)
    otel_metrics.set_meter_provider(provider)
    metrics.use(provider)


# -- logs ----------------------------------------------------------------------------------


def configure_logging(level: str = "info", *, json_logs: bool | None = None) -> None:
    """structlog to stderr: JSON lines (with trace/span ids) or console, at ``level``.

    ``SWARM_LOG_LEVEL`` and ``SWARM_LOG_FORMAT`` (``json``/``console``) override. A
    line written inside a span carries its ``trace_id`` and ``span_id``; lines about
    one event carry its ``event_id``.
    """
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    level = os.environ.get("SWARM_LOG_LEVEL", level).upper()
    fmt = os.environ.get("SWARM_LOG_FORMAT")
    as_json = (fmt == "json") if fmt else bool(json_logs)

    def add_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid and "trace_id" not in event:
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
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            add_trace,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
