"""Observing a real `swarm up`: one write traced across the client's, the gate's and
the projector's processes; a log line that leads to its trace; `swarm status` and
`swarm top` over NATS.

The service's processes export spans as JSON lines to one file
(``OTEL_TRACES_EXPORTER=console`` with ``SWARM_TRACES_FILE``); the client's spans stay
in this process, in an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry import trace

from cli.main import main
from swarm.client import SwarmClient, SyncSwarmClient
from swarm.errors import LawViolation
from swarm.server import free_port
from tests.integration.otel import span_exporter, span_id
from tests.integration.stack import UpProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("observe")
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "SWARM_TRACES_FILE": str(data / "spans.jsonl"),
        "OTEL_SERVICE_NAME": "swarm-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms, not 5 s
        "SWARM_LOG_FORMAT": "json",
        "SWARM_LOG_LEVEL": "info",
    }
    up = UpProcess("--port", str(free_port()), data=data, env=env).start()
    yield up
    assert up.terminate() == 0


@pytest.fixture(scope="module")
def exporter():
    return span_exporter()


def exported(up: UpProcess, trace_id: int, names: set[str], timeout: float = 15.0) -> dict:
    """The service's spans of one trace by name, once all of ``names`` are there."""
    path = Path(up.stderr_path.parent / "spans.jsonl")
    wanted = f"0x{trace_id:032x}"
    deadline = time.monotonic() + timeout
    while True:
        spans = {}
        if path.exists():
            for line in path.read_text().splitlines():
                span = json.loads(line)
                if span["context"]["trace_id"] == wanted:
                    spans[span["name"]] = span
        if names <= spans.keys() or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def hex_id(span: Any) -> str:
    return f"0x{span_id(span):016x}"


async def test_one_write_is_one_trace_across_three_processes(stack, exporter):
    async with await SwarmClient.connect(stack.info["nats"], agent="brad", instance="one") as c:
        with trace.get_tracer("an-agent").start_as_current_span("agent.task") as task:
            receipt = await c.remember("a write followed across processes")
        await c.get(receipt.id, after=receipt.seq)
        await c.status()  # the projector has committed
    trace_id = task.get_span_context().trace_id
    mine = {s.name: s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}
    service = {"gate.check", "log.append", "projector.apply", "projector.lancedb"}
    theirs = exported(stack, trace_id, service | {"projector.duckdb"})
    assert set(theirs) >= service | {"projector.duckdb"}, sorted(theirs)

    assert mine["swarm.memory.remembered"].parent.span_id == span_id(mine["agent.task"])
    assert mine["inbox.publish"].parent.span_id == span_id(mine["swarm.memory.remembered"])
    assert theirs["gate.check"]["parent_id"] == hex_id(mine["inbox.publish"])
    for parent, child in (
        ("gate.check", "log.append"),
        ("log.append", "projector.apply"),
        ("projector.apply", "projector.lancedb"),
        ("projector.apply", "projector.duckdb"),
    ):
        assert theirs[child]["parent_id"] == theirs[parent]["context"]["span_id"], child

    pid = {name: span["resource"]["attributes"]["process.pid"] for name, span in theirs.items()}
    assert pid["gate.check"] == pid["log.append"] == stack.info["gate_pid"]
    assert pid["projector.apply"] == pid["projector.duckdb"] == stack.proc.pid
    assert {s["resource"]["attributes"]["service.name"] for s in theirs.values()} == {
        "swarm-under-test"
    }
    laws = [e["attributes"] for e in theirs["gate.check"]["events"] if e["name"] == "law"]
    assert laws == [{"law": "no-private-data", "verdict": "pass"}]


async def test_a_refusal_log_line_names_its_trace(stack, exporter):
    async with await SwarmClient.connect(stack.info["nats"], agent="brad", instance="one") as c:
        with (
            trace.get_tracer("an-agent").start_as_current_span("agent.task") as task,
            pytest.raises(LawViolation) as refused,
        ):
            await c.remember("call me on +1 415 555 0100")
    deadline = time.monotonic() + 10
    line = None
    while line is None and time.monotonic() < deadline:
        for text in stack.stderr_path.read_text().splitlines():
            if text.startswith("{") and refused.value.event_id in text:
                entry = json.loads(text)
                line = entry if entry.get("event") == "rejected" else line
        await asyncio.sleep(0.1)
    assert line is not None, "no `rejected` log line for the event"
    assert line["trace_id"] == f"{task.get_span_context().trace_id:032x}"
    assert line["check"] == "no-private-data"


def cli(stack: UpProcess, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--url", stack.info["nats"], "--agent", "ops"])
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_status_shows_ingest_refusals_lag_recall_and_streams(stack):
    with SyncSwarmClient(stack.info["nats"], agent="ann", instance="one") as c:
        receipt = c.remember("status sees this one")
        c.recall("status", after=receipt.seq)
        with pytest.raises(LawViolation):
            c.remember("mail ann@example.org")
    status = json.loads(cli(stack, "status", "--json"))
    old = {"swarm", "log_seq", "projected_seq", "lag", "memories", "forgotten", "rejected"}
    new = {"proposed", "accepted", "rejections_by_law", "lag_seconds", "recall_latency_ms"}
    assert old | {"inbox", "pending_approvals", "stream_bytes"} | new <= set(status)
    assert status["accepted"] >= 1 and status["proposed"] >= 2
    assert status["rejections_by_law"]["no-private-data"] >= 1
    assert status["recall_latency_ms"]["n"] >= 1
    assert status["stream_bytes"]["LOG"] > 0
    assert "rejections_by_law" in cli(stack, "status")


def test_top_once_prints_one_frame(stack):
    text = cli(stack, "top", "--once")
    for heading in ("ingest", "refusals", "projection", "recall", "streams", "memories"):
        assert f"\n{heading}" in text
    [line] = cli(stack, "top", "--once", "--json").splitlines()
    frame = json.loads(line)
    assert {"log_seq", "lag", "stream_bytes", "rates", "at"} <= set(frame)


def test_top_json_prints_one_frame_per_interval(stack):
    lines = cli(stack, "top", "--json", "--interval", "0.2", "-n", "3").splitlines()
    frames = [json.loads(line) for line in lines]
    assert len(frames) == 3
    assert frames[0]["rates"]["accepted"] is None
    assert all(isinstance(f["rates"]["accepted"], float) for f in frames[1:])
