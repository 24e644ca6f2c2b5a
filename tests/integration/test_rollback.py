"""Rollback on real parts: proposed, approved, applied as compensating changes; recall after
rolling the swarm back to S equals recall on a fresh replay to S."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from cli.main import main
from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.runner import Projector
from projections.service import SwarmService
from swarm.client import SwarmClient
from swarm.embed import HashingEmbedder
from swarm.errors import SwarmError

pytestmark = pytest.mark.integration


async def two(url: str, swarm: str) -> tuple[SwarmClient, SwarmClient]:
    return (
        await SwarmClient.connect(url, swarm=swarm, agent="alice", instance="one"),
        await SwarmClient.connect(url, swarm=swarm, agent="bob", instance="one"),
    )


async def test_one_memory_rolls_back_after_approval_with_the_reason_in_history(
    nats_url, swarm_name, tmp_path
):
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path):
        alice, bob = await two(nats_url, swarm_name)
        try:
            made = await alice.remember("The deploy window is Tuesday 14:00", tags=["ops"])
            await bob.update(made.id, content="The deploy window is Friday 17:00")
            last = await bob.update(made.id, add_tags=["risky"])
            row = await alice.rollback(made.seq, memory_id=made.id, reason="bad advice")
            assert row["status"] == "pending" and row["type"] == "rollback"
            assert row["rollback"]["scope"] == "memory" and row["rollback"]["to_seq"] == made.seq
            # Nothing changes before a principal approves.
            assert (await alice.get(made.id, after=last.seq))["content"].endswith("Friday 17:00")
            decided = await bob.approve(row["proposal"], reason="agreed")
            assert decided["status"] == "approved"
            memory = await alice.get(made.id, after=decided["event_seq"])
            assert memory["content"] == "The deploy window is Tuesday 14:00"
            assert memory["tags"] == ["ops"]
            versions = (await alice.history(made.id, after=decided["event_seq"]))["versions"]
            assert [v["type"] for v in versions] == [
                "memory.remembered",
                "memory.updated",
                "memory.updated",
                "memory.restored",
            ]
            assert versions[-1]["agent"] == "_gate"
            # The next write builds on the restored state.
            again = await bob.update(made.id, importance=0.9)
            memory = await alice.get(made.id, after=again.seq)
            assert memory["content"] == "The deploy window is Tuesday 14:00"
        finally:
            await asyncio.gather(alice.close(), bob.close())


async def test_agent_scope_undoes_only_that_agents_writes(nats_url, swarm_name, tmp_path):
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path):
        alice, bob = await two(nats_url, swarm_name)
        try:
            shared = await alice.remember("Staging runs postgres 15", tags=["db"])
            point = shared.seq
            await bob.update(shared.id, content="Staging runs mysql 8")
            kept = await alice.update(shared.id, add_tags=["staging"])
            created = await bob.remember("Bob's scratch note")
            forgot = await alice.remember("Alice's runbook lives in the wiki")
            gone = await bob.forget(forgot.id, reason="stale")
            row = await alice.rollback(point, agent="bob", reason="bob's session was compromised")
            decided = await alice.approve(row["proposal"])  # open mode: anyone may decide
            seq = decided["event_seq"]
            assert seq > max(kept.seq, created.seq, gone.seq)
            memory = await alice.get(shared.id, after=seq)
            assert memory["content"] == "Staging runs postgres 15"  # bob's edit undone
            assert memory["tags"] == ["db", "staging"]  # alice's later edit kept
            assert (await alice.get(created.id))["forgotten"] is True  # bob created it
            assert (await alice.get(forgot.id))["forgotten"] is False  # bob forgot it
        finally:
            await asyncio.gather(alice.close(), bob.close())


async def test_rolling_the_swarm_back_equals_a_fresh_replay_to_that_point(
    nats_url, swarm_name, tmp_path
):
    data = tmp_path / "live"
    queries = ["deploy window", "database", "runbook wiki", "coffee"]
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=data) as svc:
        alice, bob = await two(nats_url, swarm_name)
        try:
            firsts = [
                await alice.remember("The deploy window is Tuesday 14:00", tags=["ops"]),
                await alice.remember("Staging runs postgres 15", tags=["db"]),
                await bob.remember("The coffee machine is on floor 3"),
            ]
            point = firsts[-1].seq
            await bob.update(firsts[0].id, content="The deploy window is Friday 17:00")
            await alice.forget(firsts[1].id)
            await bob.remember("The runbook lives in the wiki")
            await alice.remember("Postgres upgrades need a database freeze")
            row = await bob.rollback(point, reason="restore Monday's state")
            decided = await alice.approve(row["proposal"])
            await alice.get(firsts[0].id, after=decided["event_seq"])
            live = [
                [h["id"] for h in await alice.recall(q, k=5, after=decided["event_seq"])]
                for q in queries
            ]
        finally:
            await asyncio.gather(alice.close(), bob.close())
        assert svc.log is not None
        replay = Projector(
            svc.log,
            DuckStore(tmp_path / "replay.duckdb"),
            LanceRecall(tmp_path / "replay-recall", HashingEmbedder()),
            keys=svc.keys,
        )
        try:
            await replay.rebuild(until_seq=point)
            replayed = [
                [
                    h["id"]
                    for h in await replay.recall(
                        q, k=5, requester="alice", agent=None, kind=None, tags=[]
                    )
                ]
                for q in queries
            ]
        finally:
            replay.close()
    assert live == replayed
    assert any(live)


async def test_a_rollback_is_refused_when_it_cannot_apply_and_cli_proposes_one(
    nats_url, swarm_name, tmp_path
):
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path):
        alice, bob = await two(nats_url, swarm_name)
        try:
            made = await alice.remember("A memory to roll back")
            with pytest.raises(SwarmError, match="the log ends at seq"):
                await alice.rollback(10_000, reason="the future")
            with pytest.raises(SwarmError, match="no memory"):
                await alice.rollback(1, memory_id="NOSUCHMEMORY01", reason="x")
            with pytest.raises(SwarmError, match="neither a log sequence nor an ISO-8601 time"):
                await alice.rollback("not a time", reason="x")
            result = await asyncio.to_thread(
                CliRunner().invoke,
                main,
                [
                    "rollback",
                    "--to",
                    "2000-01-01T00:00:00Z",
                    "--reason",
                    "before anything",
                    "--url",
                    nats_url,
                    "--name",
                    swarm_name,
                    "--json",
                ],
            )
            assert result.exit_code == 0, result.output
            row = json.loads(result.stdout)
            assert row["rollback"]["to_seq"] == 0 and row["rollback"]["scope"] == "swarm"
            denied = await bob.deny(row["proposal"], reason="no")
            assert denied["status"] == "denied"
            assert (await alice.get(made.id))["forgotten"] is False
        finally:
            await asyncio.gather(alice.close(), bob.close())
