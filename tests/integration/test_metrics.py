"""The service's metrics, read with the SDK's in-memory reader (the service in process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from projections.duckdb_store import DuckStore
from projections.service import SwarmService
from swarm import metrics
from swarm.client import SwarmClient
from swarm.errors import LawViolation
from swarm.laws import LawSpec, build_law_set, default_specs

pytestmark = pytest.mark.integration


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """Metrics recorded into an in-memory reader; the streams sampled every 50 ms."""
    monkeypatch.setenv("SWARM_METRICS_INTERVAL", "0.05")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use(provider)
    yield reader
    metrics.use(None)
    provider.shutdown()


@pytest.fixture
async def served(
    reader: InMemoryMetricReader, nats_url: str, swarm_name: str, tmp_path: Path
) -> AsyncIterator[SwarmService]:
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path / "data") as svc:
        yield svc


@pytest.fixture
async def client(served: SwarmService, nats_url: str, swarm_name: str) -> AsyncIterator[Any]:
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="one"
    ) as c:
        yield c


def points(reader: InMemoryMetricReader, name: str, swarm: str) -> list[tuple[dict[str, Any], Any]]:
    """The data points of one metric for one swarm: (attributes, point)."""
    data = reader.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found += [
                        (dict(p.attributes or {}), p)
                        for p in metric.data.data_points
                        if (p.attributes or {}).get("swarm") == swarm
                    ]
    return found


def value(reader: InMemoryMetricReader, name: str, swarm: str, **attrs: str) -> float | None:
    """A counter's or gauge's value (a histogram's count) where the attributes match."""
    for point_attrs, point in points(reader, name, swarm):
        if all(point_attrs.get(k) == v for k, v in attrs.items()):
            return float(getattr(point, "value", getattr(point, "count", 0)))
    return None


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_the_gate_counts_proposals_acceptances_and_refusals_by_law(reader, client):
    swarm = client.subjects.swarm
    for i in range(3):
        await client.remember(f"counted memory {i}")
    with pytest.raises(LawViolation):
        await client.remember("write to someone@example.org")
    await eventually(lambda: value(reader, metrics.PROPOSED, swarm) == 4)
    assert value(reader, metrics.ACCEPTED, swarm, type="memory.remembered") == 3
    assert value(reader, metrics.REJECTED, swarm, law="no-private-data") == 1
    assert (value(reader, metrics.GATE_LATENCY, swarm) or 0) >= 1
    [(_, batches)] = points(reader, metrics.GATE_BATCH, swarm)
    assert batches.sum == 4


async def test_projector_recall_and_streams_are_measured(reader, client):
    swarm = client.subjects.swarm
    receipt = await client.remember("a memory to find again")
    for _ in range(3):
        await client.recall("find again", after=receipt.seq)
    status = await client.status()
    assert status["recall_latency_ms"]["n"] == 3
    assert status["recall_latency_ms"]["p50"] > 0
    assert value(reader, metrics.RECALL_LATENCY, swarm) == 3
    assert (value(reader, metrics.PROJECTOR_BATCH, swarm) or 0) >= 1
    for store in ("duckdb", "lancedb"):
        assert (value(reader, metrics.APPLY_LATENCY, swarm, store=store) or 0) >= 1
    await eventually(lambda: (value(reader, metrics.STREAM_SIZE, swarm, stream="LOG") or 0) > 0)
    assert value(reader, metrics.STREAM_SIZE, swarm, stream="LOG") == status["stream_bytes"]["LOG"]


async def test_projection_lag_rises_under_load_and_returns_to_zero(
    reader, client, monkeypatch: pytest.MonkeyPatch
):
    swarm = client.subjects.swarm
    commit = DuckStore.apply

    def slow_commit(self: DuckStore, batch: Any) -> None:
        time.sleep(0.2)  # a projector that cannot keep up
        commit(self, batch)

    monkeypatch.setattr(DuckStore, "apply", slow_commit)
    seen: list[tuple[float, float]] = []

    async def watch() -> None:
        while True:
            lag = value(reader, metrics.LAG, swarm)
            if lag is not None:
                seen.append((lag, value(reader, metrics.LAG_TIME, swarm) or 0.0))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        receipts = await asyncio.gather(*(client.remember(f"load {i}") for i in range(200)))
        await client.get(receipts[-1].id, after=max(r.seq for r in receipts))  # staged
        await eventually(lambda: any(lag > 0 for lag, _ in seen))
        assert max(age for _, age in seen) > 0, seen
        monkeypatch.setattr(DuckStore, "apply", commit)
        await eventually(lambda: bool(seen) and seen[-1] == (0.0, 0.0))
    finally:
        watcher.cancel()
    status = await client.status()
    assert (status["lag"], status["lag_seconds"]) == (0, 0.0)


async def test_pending_approvals_is_a_gauge(reader, nats_url, swarm_name, tmp_path):
    ask = LawSpec.model_validate(
        {"id": "ask-before-forgetting", "kind": "destructive", "action": "require_approval"}
    )
    laws = build_law_set([*default_specs(), ask], allow_approval=True)
    async with (
        SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path, laws=laws),
        await SwarmClient.connect(nats_url, swarm=swarm_name, agent="ann", instance="a") as ann,
        await SwarmClient.connect(nats_url, swarm=swarm_name, agent="bob", instance="b") as bob,
    ):
        made = await ann.remember("The staging cluster is shared with QA")
        held = await bob.forget(made.id)
        assert held.status == "pending"
        await eventually(lambda: value(reader, metrics.APPROVALS_PENDING, swarm_name) == 1)
