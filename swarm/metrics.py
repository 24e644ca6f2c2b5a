"""The service's metrics: one catalogue of names, shared by the code that records them,
`swarm status` / `swarm top`, and the Grafana dashboard in docker/ (a test checks the
dashboard queries only names listed here).

Each entry gives the OpenTelemetry instrument (name, kind, unit) and the name it has
once the OpenTelemetry Collector's Prometheus exporter has translated it (dots to
underscores, ``_seconds`` for unit ``s``, ``_total`` for counters; histograms add
``_bucket``, ``_sum`` and ``_count``).

Recording needs the OpenTelemetry *API* only: instruments are made on first use from
the provider given to :func:`use` (``telemetry.configure`` passes the SDK's when
``OTEL_METRICS_EXPORTER`` asks for one), else from the global provider, which is a
no-op until an SDK is installed. Gauges are observable: the code that knows a value
sets it (:func:`observe`), and the exporter reads the latest at each collection.
The projector's process samples the streams for them (:func:`watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog
from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

if TYPE_CHECKING:
    from swarm.jetstream import JetStreamLog

__all__ = [
    "CATALOGUE",
    "LogVitals",
    "MetricSpec",
    "accepted",
    "applied",
    "count",
    "enabled",
    "gate_batch",
    "log_vitals",
    "observe",
    "projector_batch",
    "prometheus_names",
    "recall_answered",
    "recall_percentiles",
    "record",
    "rejected",
    "use",
    "watch",
]

Kind = Literal["counter", "histogram", "gauge", "updown"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()

    @property
    def prometheus(self) -> str:
        """The metric's name in Prometheus (base name; histograms add suffixes)."""
        base = self.name.replace(".", "_")
        if self.unit == "s":
            base += "_seconds"
        elif self.unit == "By":
            base += "_bytes"
        return base + "_total" if self.kind == "counter" else base


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(
        "swarm.events.proposed",
        "counter",
        "{event}",
        "proposals the gate took from the inbox",
        ("swarm",),
    ),
    MetricSpec(
        "swarm.events.accepted",
        "counter",
        "{event}",
        "events the gate appended to the log",
        ("swarm", "type"),
    ),
    MetricSpec(
        "swarm.events.rejected",
        "counter",
        "{event}",
        "proposals refused, by law or check",
        ("swarm", "law"),
    ),
    MetricSpec(
        "swarm.gate.latency",
        "histogram",
        "s",
        "time from a batch's fetch to its answers",
        ("swarm",),
    ),
    MetricSpec(
        "swarm.gate.batch.size", "histogram", "{event}", "proposals per gate batch", ("swarm",)
    ),
    MetricSpec(
        "swarm.projection.lag", "gauge", "{event}", "log entries not yet projected", ("swarm",)
    ),
    MetricSpec(
        "swarm.projection.lag.time",
        "gauge",
        "s",
        "age of the oldest entry not yet projected",
        ("swarm",),
    ),
    MetricSpec(
        "swarm.projector.batch.size",
        "histogram",
        "{event}",
        "entries per projector batch",
        ("swarm",),
    ),
    MetricSpec(
        "swarm.projector.apply.latency",
        "histogram",
        "s",
        "time to stage and commit a batch",
        ("swarm", "store"),
    ),
    MetricSpec("swarm.recall.latency", "histogram", "s", "time to answer a recall", ("swarm",)),
    MetricSpec("swarm.stream.size", "gauge", "By", "bytes stored per stream", ("swarm", "stream")),
    MetricSpec(
        "swarm.approvals.pending",
        "gauge",
        "{proposal}",
        "proposals waiting for a decision",
        ("swarm",),
    ),
)


def prometheus_names() -> set[str]:
    """Every series name a Prometheus query may use (histograms with their suffixes)."""
    names: set[str] = set()
    for spec in CATALOGUE:
        names.add(spec.prometheus)
        if spec.kind == "histogram":
            names.update(f"{spec.prometheus}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


# -- recording ----------------------------------------------------------------------------

PROPOSED = "swarm.events.proposed"
ACCEPTED = "swarm.events.accepted"
REJECTED = "swarm.events.rejected"
GATE_LATENCY = "swarm.gate.latency"
GATE_BATCH = "swarm.gate.batch.size"
LAG = "swarm.projection.lag"
LAG_TIME = "swarm.projection.lag.time"
PROJECTOR_BATCH = "swarm.projector.batch.size"
APPLY_LATENCY = "swarm.projector.apply.latency"
RECALL_LATENCY = "swarm.recall.latency"
STREAM_SIZE = "swarm.stream.size"
APPROVALS_PENDING = "swarm.approvals.pending"

SPECS = {spec.name: spec for spec in CATALOGUE}
#: Histogram buckets: latencies from 0.5 ms to 10 s, batch sizes from 1 to 5,000.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COUNT_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
#: Recalls kept per swarm for the percentiles `swarm status` shows.
RECALL_WINDOW = 1000
#: Seconds between two samples of the streams (``SWARM_METRICS_INTERVAL`` overrides).
SAMPLE_INTERVAL = 1.0

logger = structlog.get_logger(__name__)

_lock = threading.Lock()
_provider: MeterProvider | None = None
_instruments: dict[str, Any] = {}
_gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
    spec.name: {} for spec in CATALOGUE if spec.kind == "gauge"
}
_recalls: dict[str, deque[float]] = {}


def use(provider: MeterProvider | None) -> None:
    """Record into ``provider`` from now on (None: the global provider again).

    ``telemetry.configure`` calls it with the SDK's provider; tests pass one with an
    in-memory reader. Instruments are made again from the new provider on next use.
    """
    global _provider  # noqa: PLW0603 - one process-wide choice, like the global provider
    with _lock:
        _provider = provider
        _instruments.clear()


def enabled() -> bool:
    """True once a provider was given to :func:`use`: worth sampling the streams."""
    return _provider is not None


def _meter() -> Meter:
    provider = _provider if _provider is not None else otel_metrics.get_meter_provider()
    return provider.get_meter("swarm-memory")


def _create(meter: Meter, spec: MetricSpec) -> Any:
    if spec.kind == "counter":
        return meter.create_counter(spec.name, spec.unit, spec.description)
    if spec.kind == "updown":
        return meter.create_up_down_counter(spec.name, spec.unit, spec.description)
    if spec.kind == "histogram":
        buckets = SECONDS_BUCKETS if spec.unit == "s" else COUNT_BUCKETS
        return meter.create_histogram(
            spec.name,
            spec.unit,
            spec.description,
            explicit_bucket_boundaries_advisory=[float(b) for b in buckets],
        )
    values = _gauges[spec.name]

    def read(_: CallbackOptions) -> Iterable[Observation]:
        with _lock:
            current = list(values.items())
        return [Observation(value, dict(attrs)) for attrs, value in current]

    return meter.create_observable_gauge(spec.name, [read], spec.unit, spec.description)


def _instrument(name: str) -> Any:
    found = _instruments.get(name)
    if found is None:
        spec = SPECS[name]  # a KeyError here: the name is not in the catalogue
        with _lock:
            found = _instruments.get(name)
            if found is None:
                found = _instruments[name] = _create(_meter(), spec)
    return found


def _attrs(swarm: str | None, **more: str) -> dict[str, str]:
    return more if swarm is None else {"swarm": swarm, **more}


def count(name: str, value: int = 1, **attributes: str) -> None:
    """Add to a counter of the catalogue."""
    _instrument(name).add(value, attributes)


def record(name: str, value: float, **attributes: str) -> None:
    """Record one value in a histogram of the catalogue."""
    _instrument(name).record(value, attributes)


def observe(name: str, value: float, **attributes: str) -> None:
    """Set a gauge of the catalogue; exporters read the latest value."""
    key = tuple(sorted(attributes.items()))
    with _lock:
        _gauges[name][key] = value
    _instrument(name)  # the observable gauge exists from the first value on


# -- what the service records ---------------------------------------------------------------


def gate_batch(swarm: str, size: int, seconds: float) -> None:
    """One gate batch: ``size`` proposals taken from the inbox, answered in ``seconds``."""
    count(PROPOSED, size, swarm=swarm)
    record(GATE_BATCH, size, swarm=swarm)
    record(GATE_LATENCY, seconds, swarm=swarm)


def accepted(swarm: str, type_name: str) -> None:
    count(ACCEPTED, swarm=swarm, type=type_name)


def rejected(swarm: str, law: str) -> None:
    """A refusal recorded, by the law or built-in check that made it."""
    count(REJECTED, swarm=swarm, law=law)


def projector_batch(swarm: str | None, size: int) -> None:
    record(PROJECTOR_BATCH, size, **_attrs(swarm))


def applied(swarm: str | None, store: str, seconds: float) -> None:
    """One projection write to ``store`` (duckdb or lancedb)."""
    record(APPLY_LATENCY, seconds, **_attrs(swarm, store=store))


def recall_answered(swarm: str, seconds: float) -> None:
    record(RECALL_LATENCY, seconds, swarm=swarm)
    with _lock:
        window = _recalls.get(swarm)
        if window is None:
            window = _recalls[swarm] = deque(maxlen=RECALL_WINDOW)
        window.append(seconds)


def recall_percentiles(swarm: str) -> dict[str, float | int | None]:
    """p50/p90/p99 in milliseconds of this process's last recalls (``n`` of them)."""
    with _lock:
        values = sorted(_recalls.get(swarm, ()))
    out: dict[str, float | int | None] = {"n": len(values)}
    for p in (50, 90, 99):
        out[f"p{p}"] = (
            round(values[min(len(values) - 1, len(values) * p // 100)] * 1000, 2)
            if values
            else None
        )
    return out


# -- the streams, sampled -------------------------------------------------------------------


@dataclass(frozen=True)
class LogVitals:
    """What the streams say about a swarm, next to the projection's position."""

    log_seq: int
    lag: int  # log entries not yet projected
    lag_seconds: float  # age of the oldest of them
    proposed: int  # proposals the inbox ever took
    inbox: int  # proposals waiting for the gate
    rejected: int  # refusals recorded
    stream_bytes: dict[str, int]  # LOG, INBOX, REJECTED


async def log_vitals(log: JetStreamLog, projected_seq: int) -> LogVitals:
    """The streams' state (one request each) and the projection's lag behind the log."""
    s = log.subjects
    entries, inbox, refusals = await asyncio.gather(
        log.stream_state(s.log_stream),
        log.stream_state(s.inbox_stream),
        log.stream_state(s.rejected_stream),
    )
    lag = max(0, entries.last_seq - projected_seq)
    lag_seconds = 0.0
    if lag:
        oldest = await log.stored_at(projected_seq + 1)
        if oldest is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    return LogVitals(
        log_seq=entries.last_seq,
        lag=lag,
        lag_seconds=round(lag_seconds, 3),
        proposed=inbox.last_seq,
        inbox=inbox.messages,
        rejected=refusals.last_seq,
        stream_bytes={"LOG": entries.bytes, "INBOX": inbox.bytes, "REJECTED": refusals.bytes},
    )


def observe_vitals(swarm: str, vitals: LogVitals) -> None:
    observe(LAG, vitals.lag, swarm=swarm)
    observe(LAG_TIME, vitals.lag_seconds, swarm=swarm)
    for stream, size in vitals.stream_bytes.items():
        observe(STREAM_SIZE, size, swarm=swarm, stream=stream)


class Positioned(Protocol):
    @property
    def projected_seq(self) -> int: ...


async def watch(
    log: JetStreamLog, views: Positioned, stop: asyncio.Event, interval: float | None = None
) -> None:
    """Sample the streams into the gauges every ``interval`` seconds until ``stop``.

    A failed sample is logged and skipped: metrics never stop the service.
    """
    if interval is None:
        interval = float(os.environ.get("SWARM_METRICS_INTERVAL", SAMPLE_INTERVAL))
    swarm = log.subjects.swarm
    while not stop.is_set():
        try:
            observe_vitals(swarm, await log_vitals(log, views.projected_seq))
        except Exception as err:  # the connection closing, a slow server: try again later
            if not stop.is_set():
                logger.debug("metrics_sample_failed", error=repr(err))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
