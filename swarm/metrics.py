"""The service's metrics: one catalogue of names, shared by the code that records them,
`swarm status` / `swarm top`, and the Grafana dashboard in docker/ (a test checks the
dashboard queries only names listed here).

Each entry gives the OpenTelemetry instrument (name, kind, unit) and the name it has
once the OpenTelemetry Collector's Prometheus exporter has translated it (dots to
underscores, ``_seconds`` for unit ``s``, ``_total`` for counters; histograms add
``_bucket``, ``_sum`` and ``_count``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CATALOGUE", "MetricSpec", "prometheus_names"]

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
