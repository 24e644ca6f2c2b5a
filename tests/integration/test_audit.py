"""The log's hash chain on real parts: the gate writes it, `swarm audit --verify` proves it,
and every way of tampering with a copy of the store is named."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from cli.main import main
from projections.service import SwarmService, store_paths
from swarm.client import SwarmClient
from swarm.identity import AgentEntry, Credentials
from swarm.laws import LawSpec, build_law_set, default_specs

pytestmark = pytest.mark.integration

ASK = LawSpec.model_validate({"id": "ask", "kind": "destructive", "action": "require_approval"})


async def swarm_cli(*args: str) -> tuple[int, dict]:
    result = await asyncio.to_thread(CliRunner().invoke, main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


async def populate(url: str, swarm: str, data: Path) -> int:
    """A small history: laws, signed and unsigned writes, a held forget. Returns log_seq."""
    laws = build_law_set([*default_specs(), ASK], allow_approval=True)
    async with SwarmService(url, swarm=swarm, data_dir=data, laws=laws) as svc:
        assert svc.log is not None
        async with await SwarmClient.connect(url, swarm=swarm, agent="ann", instance="a") as ann:
            first = await ann.remember("unsigned, written in open mode")
            creds = Credentials.generate(swarm, "brad")
            await svc.log.put_agent(AgentEntry(agent="brad", public_key=creds.public_key))
        async with await SwarmClient.connect(
            url, swarm=swarm, agent="brad", instance="b", credentials=creds
        ) as brad:
            for i in range(5):
                await brad.remember(f"signed memory {i}")
            held = await brad.forget(first.id)
            assert held.status == "pending"
            last = await brad.status()
            await brad.get(first.id, after=last["log_seq"])
            return int(last["log_seq"])


async def test_the_live_log_verifies_and_the_audit_lists_who_did_what(
    nats_url, swarm_name, tmp_path
):
    log_seq = await populate(nats_url, swarm_name, tmp_path)
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path):
        code, report = await swarm_cli("audit", "--verify", "--url", nats_url, "--name", swarm_name)
        assert code == 0, report
        assert report["ok"] and report["checked"] == log_seq == report["last_seq"]
        assert report["signed"] == 5 and report["unsigned"] == 1
        assert report["signatures_checked"] is True

        code, listed = await swarm_cli(
            "audit", "--url", nats_url, "--name", swarm_name, "--agent", "brad"
        )
        assert code == 0
        types = [e["type"] for e in listed["events"]]
        assert types == ["memory.remembered"] * 5 + ["proposal.opened"]
        assert all(e["law_set"] for e in listed["events"])
        code, since = await swarm_cli(
            "audit", "--url", nats_url, "--name", swarm_name, "--since", str(log_seq - 1)
        )
        assert [e["seq"] for e in since["events"]] == [log_seq]


def tamper(data: Path, swarm: str, sql: str, params: list | None = None) -> Path:
    """A copy of the data directory with ``sql`` run on its DuckDB file."""
    copy = data.parent / f"copy-{abs(hash(sql))}"
    shutil.copytree(data / "swarms", copy / "swarms")
    path, _ = store_paths(copy, swarm)
    with duckdb.connect(str(path)) as con:
        con.execute(sql, params)
    return copy


def stored(data: Path, swarm: str, seq: int) -> bytes:
    path, _ = store_paths(data, swarm)
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT record FROM event_records WHERE seq = ?", [seq]).fetchone()
    assert row is not None
    return bytes(row[0])


async def test_tampering_with_a_copy_of_the_store_is_named(nats_url, swarm_name, tmp_path):
    data = tmp_path / "data"
    log_seq = await populate(nats_url, swarm_name, data)
    name = ["--name", swarm_name]
    code, clean = await swarm_cli("audit", "--verify", "--data", str(data), *name)
    assert code == 0 and clean["ok"] and clean["checked"] == log_seq

    target = log_seq - 3
    original = stored(data, swarm_name, target)
    forged = original.replace(b'"law_set":"', b'"law_set":"9:forged-', 1)
    assert forged != original
    altered = tamper(
        data, swarm_name, "UPDATE event_records SET record = ? WHERE seq = ?", [forged, target]
    )
    code, report = await swarm_cli("audit", "--verify", "--data", str(altered), *name)
    assert code == 1 and report["first_bad_seq"] == log_seq - 3
    assert "altered" in report["problem"]

    removed = tamper(data, swarm_name, "DELETE FROM event_records WHERE seq = 4")
    code, report = await swarm_cli("audit", "--verify", "--data", str(removed), *name)
    assert code == 1 and report["first_bad_seq"] == 4 and "missing" in report["problem"]

    moved = tamper(
        data,
        swarm_name,
        "DELETE FROM event_records WHERE seq = 4; "
        "UPDATE event_records SET seq = seq - 1 WHERE seq > 4",
    )
    code, report = await swarm_cli("audit", "--verify", "--data", str(moved), *name)
    assert code == 1 and report["first_bad_seq"] == 4 and "removed" in report["problem"]

    swapped = tamper(
        data,
        swarm_name,
        "UPDATE event_records SET seq = -1 WHERE seq = 5; "
        "UPDATE event_records SET seq = 5 WHERE seq = 6; "
        "UPDATE event_records SET seq = 6 WHERE seq = -1",
    )
    code, report = await swarm_cli("audit", "--verify", "--data", str(swapped), *name)
    assert code == 1 and report["first_bad_seq"] == 5


async def test_an_entry_written_around_the_gate_is_caught_and_the_gate_carries_on(
    nats_url, swarm_name, tmp_path
):
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path) as svc:
        assert svc.log is not None
        async with await SwarmClient.connect(
            nats_url, swarm=swarm_name, agent="ann", instance="a"
        ) as ann:
            before = await ann.remember("before the forged entry")
            # Someone with server access appends to the log directly, bypassing the gate.
            forged = await svc.log.js.publish(
                svc.log.subjects.log("ann", before.id), b'{"forged": true}'
            )
            after = await ann.remember("after the forged entry")
            assert after.seq == forged.seq + 1  # the gate re-read the log's end and chained on
            code, report = await swarm_cli(
                "audit", "--verify", "--url", nats_url, "--name", swarm_name
            )
    assert code == 1
    assert report["first_bad_seq"] == forged.seq
    assert "unreadable" in report["problem"]
