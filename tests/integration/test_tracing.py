"""W3C trace context travels in NATS headers: client -> gate -> log -> projector."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swarm.client import SwarmClient

pytestmark = pytest.mark.integration

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracing():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # once per process; later calls are ignored


async def test_one_write_is_one_trace_from_client_to_projection(service, nats_url, swarm_name):
    EXPORTER.clear()
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as c:
        receipt = await c.remember("traced memory")
        await c.get(receipt.id, after=receipt.seq)
        await c.status()  # waits for the projector's commit, so its span has ended
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    if "swarm.memory.remembered" not in spans:
        pytest.fail(f"no client span; got {sorted(spans)} (tracer provider set elsewhere first?)")
    client, gate, projector = (
        spans["swarm.memory.remembered"],
        spans["gate.check"],
        spans["projector.apply"],
    )
    trace_id = client.context.trace_id
    assert gate.context.trace_id == trace_id
    assert gate.parent is not None
    assert gate.parent.span_id == client.context.span_id
    assert projector.context.trace_id == trace_id
    laws = [e for e in gate.events if e.name == "law"]
    assert [e.attributes["law"] for e in laws] == ["no-private-data"]
    assert laws[0].attributes["verdict"] == "pass"
