"""The metrics catalogue, its recording helpers, and turning exporters on by env vars."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from swarm import metrics
from swarm.metrics import CATALOGUE
from tests.unit.test_purity import forbidden_in, loaded_modules

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"counter": "Sum", "histogram": "Histogram", "gauge": "Gauge", "updown": "Sum"}


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use(provider)
    yield reader
    metrics.use(None)
    provider.shutdown()


def record_everything() -> None:
    """Every helper the service records with, once."""
    metrics.gate_batch("s", 3, 0.004)
    metrics.accepted("s", "memory.remembered")
    metrics.rejected("s", "no-private-data")
    metrics.projector_batch("s", 3)
    metrics.applied("s", "duckdb", 0.01)
    metrics.applied("s", "lancedb", 0.002)
    metrics.recall_answered("s", 0.003)
    metrics.observe_vitals(
        "s",
        metrics.LogVitals(
            log_seq=9,
            lag=2,
            lag_seconds=0.5,
            proposed=10,
            inbox=0,
            rejected=1,
            stream_bytes={"LOG": 100, "INBOX": 0, "REJECTED": 10},
        ),
    )
    metrics.observe(metrics.APPROVALS_PENDING, 1, swarm="s")


def test_every_catalogue_metric_is_recorded_with_its_kind_unit_and_attributes(reader):
    record_everything()
    data = reader.get_metrics_data()
    assert data is not None
    seen = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert set(seen) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        metric = seen[spec.name]
        assert type(metric.data).__name__ == KINDS[spec.kind], spec.name
        assert metric.unit == spec.unit, spec.name
        for point in metric.data.data_points:
            assert set(point.attributes or {}) <= set(spec.attributes), spec.name


def test_recording_without_a_provider_is_a_no_op():
    metrics.use(None)
    record_everything()  # nothing installed: nothing raises, nothing is kept but the window
    assert metrics.recall_percentiles("s")["n"] >= 1


def test_recall_percentiles_come_from_the_recent_window():
    for ms in range(1, 101):
        metrics.recall_answered("window", ms / 1000)
    assert metrics.recall_percentiles("window") == {
        "n": 100,
        "p50": 51.0,
        "p90": 91.0,
        "p99": 100.0,
    }
    assert metrics.recall_percentiles("none yet") == {"n": 0, "p50": None, "p90": None, "p99": None}


def test_an_unknown_name_is_refused():
    with pytest.raises(KeyError):
        metrics.count("swarm.not.in.the.catalogue")


def test_metrics_and_telemetry_import_no_sdk():
    names = loaded_modules("swarm.metrics", "swarm.telemetry")
    assert forbidden_in(names) == []


def test_the_observability_guide_lists_the_catalogue():
    """docs/observability.md's metric table names exactly the catalogue, kinds and units."""
    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(swarm\.[a-z.]+)` \| (\w+) \| `([^`]+)` \| `([^`]+)` \|", text, re.M)
    assert rows == [(s.name, s.kind, s.unit, s.prometheus) for s in CATALOGUE]


def run_configured(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from swarm import telemetry, metrics\ntelemetry.configure()\n" + code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        check=False,
    )


def test_console_metrics_are_exported_as_json_lines_on_stderr():
    result = run_configured(
        "metrics.accepted('s', 'memory.remembered')\nimport time; time.sleep(0.5)",
        OTEL_METRICS_EXPORTER="console",
        OTEL_METRIC_EXPORT_INTERVAL="100",
        OTEL_SERVICE_NAME="metrics-test",
    )
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    names = {
        m["name"]
        for d in docs
        for rm in d["resource_metrics"]
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    }
    assert "swarm.events.accepted" in names
    resource = docs[0]["resource_metrics"][0]["resource"]["attributes"]
    assert resource["service.name"] == "metrics-test"
    assert resource["process.pid"] > 0


def test_console_spans_go_to_the_traces_file(tmp_path):
    spans = tmp_path / "spans.jsonl"
    result = run_configured(
        "with telemetry.tracer.start_as_current_span('one'): pass\n"
        "from opentelemetry import trace; trace.get_tracer_provider().shutdown()",
        OTEL_TRACES_EXPORTER="console",
        SWARM_TRACES_FILE=str(spans),
    )
    assert result.returncode == 0, result.stderr
    [line] = spans.read_text().splitlines()
    assert json.loads(line)["name"] == "one"


def test_otlp_exporters_are_installed_with_no_warning():
    result = run_configured(
        "from opentelemetry import trace, metrics as m\n"
        "print(type(trace.get_tracer_provider()).__module__, metrics.enabled())",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # nothing is sent before exit
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert result.stdout.split() == ["opentelemetry.sdk.trace", "True"]
