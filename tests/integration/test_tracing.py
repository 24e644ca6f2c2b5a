"""W3C trace context travels in NATS headers: agent -> client -> gate -> log -> projector.

Here the service runs in the test's process; tests/integration/test_observe_stack.py
follows the same write across the processes of a real `swarm up`.
"""

from __future__ import annotations

import itertools

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from swarm.client import SwarmClient
from swarm.errors import LawViolation
from tests.integration.otel import of_trace, parent_of, span_exporter, span_id

pytestmark = pytest.mark.integration

WRITE_CHAIN = (
    "agent.task",
    "swarm.memory.remembered",
    "inbox.publish",
    "gate.check",
    "log.append",
    "projector.apply",
)


@pytest.fixture(scope="module")
def exporter():
    return span_exporter()


@pytest.fixture
async def client(service, nats_url, swarm_name):
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as c:
        yield c


async def test_one_write_is_one_trace_inside_the_agents_own_span(exporter, client):
    exporter.clear()
    with trace.get_tracer("an-agent").start_as_current_span("agent.task") as task:
        receipt = await client.remember("traced memory")
    await client.get(receipt.id, after=receipt.seq)  # staged: readable
    await client.status()  # waits for the projector's commit, so its spans have ended
    spans = of_trace(exporter.get_finished_spans(), task.get_span_context().trace_id)
    missing = [name for name in WRITE_CHAIN if name not in spans]
    assert not missing, f"not in the agent's trace: {missing}; got {sorted(spans)}"
    for parent, child in itertools.pairwise(WRITE_CHAIN):
        assert parent_of(spans[child]) == span_id(spans[parent]), f"{child} not under {parent}"
    for store in ("projector.lancedb", "projector.duckdb"):
        assert parent_of(spans[store]) == span_id(spans["projector.apply"])
    laws = [e.attributes for e in spans["gate.check"].events if e.name == "law"]
    assert [(a["law"], a["verdict"]) for a in laws] == [("no-private-data", "pass")]
    assert spans["log.append"].attributes["swarm.seq"] == receipt.seq
    assert spans["gate.check"].attributes["swarm.event_id"] == receipt.event_id


async def test_a_refused_write_ends_its_trace_at_the_gate_with_the_law(exporter, client):
    exporter.clear()
    with (
        trace.get_tracer("an-agent").start_as_current_span("agent.task") as task,
        pytest.raises(LawViolation),
    ):
        await client.remember("mail me at someone@example.org")
    spans = of_trace(exporter.get_finished_spans(), task.get_span_context().trace_id)
    gate = spans["gate.check"]
    assert gate.status.status_code is StatusCode.ERROR
    [refusal] = [e.attributes for e in gate.events if e.name == "rejected"]
    assert refusal["check"] == "no-private-data"
    assert "log.append" not in spans


async def test_reads_are_traced_into_the_service(exporter, client):
    receipt = await client.remember("a memory to read back")
    exporter.clear()
    with trace.get_tracer("an-agent").start_as_current_span("agent.lookup") as lookup:
        await client.get(receipt.id, after=receipt.seq)
        await client.recall("read back", after=receipt.seq)
    spans = of_trace(exporter.get_finished_spans(), lookup.get_span_context().trace_id)
    for op in ("get", "recall"):
        assert parent_of(spans[f"swarm.{op}"]) == span_id(spans["agent.lookup"])
        assert parent_of(spans[f"api.{op}"]) == span_id(spans[f"swarm.{op}"])
        assert spans[f"api.{op}"].attributes["swarm.requester"] == "brad"
