"""Export and import on real parts: the `memories` read, bundles, a second swarm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from projections.service import SwarmService
from swarm.bundle import read_bundle
from swarm.client import SwarmClient, SyncSwarmClient
from swarm.identity import Credentials
from swarm.laws import LawSpec, build_law_set, default_specs
from swarm.laws.spec import parse_soul
from swarm.transfer import export_bundle, import_bundle, imported_id

pytestmark = pytest.mark.integration

NO_DRAFTS = LawSpec(
    id="no-drafts",
    description="Drafts stay out of this swarm",
    kind="deny_tags",
    params={"tags": ["draft"]},
    action="reject",
)


@pytest.fixture
async def brad(service: object, nats_url: str, swarm_name: str) -> AsyncIterator[SwarmClient]:
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as client:
        yield client


@pytest.fixture
async def second_swarm(nats_url: str, swarm_name: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another swarm on the same server, whose laws also refuse drafts."""
    name = f"{swarm_name}-b"
    laws = build_law_set([*default_specs(), NO_DRAFTS], allow_approval=True)
    async with SwarmService(nats_url, swarm=name, data_dir=tmp_path / "second", laws=laws):
        yield name


async def remember_some(client: SwarmClient) -> dict[str, Any]:
    """Memories of every shape an export meets; returns their ids and the last seq."""
    shared = await client.remember(
        "Nightly backups run at 03:00", tags=["ops", "db"], importance=0.8, kind="procedure"
    )
    await client.reinforce(shared.id)
    mine = await client.remember("I suspect the cache is too small", private=True, tags=["ops"])
    draft = await client.remember("Draft: move staging to Postgres 17", tags=["draft"])
    gone = await client.remember("The VPN endpoint is vpn1", tags=["net"])
    last = await client.forget(gone.id, reason="moved to vpn2")
    return {
        "shared": shared.id,
        "mine": mine.id,
        "draft": draft.id,
        "gone": gone.id,
        "seq": last.seq,
    }


async def contents(client: SwarmClient, agent: str, **options: Any) -> dict[str, dict[str, Any]]:
    return {m["content"]: m async for m in client.memories(agent=agent, **options)}


async def test_memories_lists_an_agents_memories_in_pages(
    brad: SwarmClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("swarm.client.MEMORIES_PAGE", 2)
    receipts = [await brad.remember(f"note {i}", tags=["paging"]) for i in range(5)]
    rows = [m async for m in brad.memories(agent="brad", after=receipts[-1].seq)]
    assert [m["content"] for m in rows] == [f"note {i}" for i in range(5)]
    assert [m["seq"] for m in rows] == sorted(m["seq"] for m in rows)
    assert {"id", "tags", "importance", "recall_count", "created_at", "updated_at"} <= set(rows[0])
    assert [m async for m in brad.memories(agent="nobody")] == []


async def test_memories_shows_private_ones_only_to_their_agent_and_the_admin(
    brad: SwarmClient, nats_url: str, swarm_name: str
) -> None:
    ids = await remember_some(brad)
    admin_creds = Credentials.generate(swarm_name, "admin", role="admin")
    async with (
        await SwarmClient.connect(nats_url, swarm=swarm_name, agent="ann", instance="x") as ann,
        await SwarmClient.connect(
            nats_url, swarm=swarm_name, agent="admin", instance="x", credentials=admin_creds
        ) as admin,
    ):
        seen_by = {
            "brad": await contents(brad, "brad", after=ids["seq"]),
            "ann": await contents(ann, "brad", after=ids["seq"]),
            "admin": await contents(admin, "brad", after=ids["seq"]),
        }
        with_forgotten = await contents(ann, "brad", forgotten=True)
    private = "I suspect the cache is too small"
    assert private in seen_by["brad"]
    assert private in seen_by["admin"]
    assert private not in seen_by["ann"]
    assert len(seen_by["ann"]) == 2
    assert "The VPN endpoint is vpn1" not in seen_by["brad"]
    assert with_forgotten["The VPN endpoint is vpn1"]["forgotten"] is True


async def test_export_writes_a_bundle_with_the_laws_in_force_in_its_soul(
    brad: SwarmClient, swarm_name: str, tmp_path: Path
) -> None:
    ids = await remember_some(brad)
    await brad.get(ids["gone"], after=ids["seq"])
    bundle, files = await export_bundle(brad, tmp_path / "out", "brad", swarm=swarm_name)
    assert {m.id for m in bundle.memories} == {ids["shared"], ids["mine"], ids["draft"]}
    shared = next(m for m in bundle.memories if m.id == ids["shared"])
    assert (shared.kind, shared.tags, shared.importance, shared.recall_count) == (
        "procedure",
        ("db", "ops"),
        0.8,
        1,
    )
    assert read_bundle(tmp_path / "out") == bundle
    soul = (tmp_path / "out" / "SOUL.md").read_text()
    assert [s.id for s in parse_soul(soul)] == ["no-private-data"]
    assert Path("memory/procedure-db.md") in files


async def test_export_then_import_into_another_swarm_then_again_writes_nothing_new(
    brad: SwarmClient, nats_url: str, second_swarm: str, swarm_name: str, tmp_path: Path
) -> None:
    ids = await remember_some(brad)
    await brad.get(ids["gone"], after=ids["seq"])
    bundle, _ = await export_bundle(
        brad, tmp_path / "out", "brad", swarm=swarm_name, include_forgotten=True
    )
    async with await SwarmClient.connect(
        nats_url, swarm=second_swarm, agent="brad", instance="new-model"
    ) as target:
        first = await import_bundle(target, read_bundle(tmp_path / "out"), include_forgotten=True)
        status = await target.status()
        again = await import_bundle(target, read_bundle(tmp_path / "out"), include_forgotten=True)
        after = await target.status()
        there = await contents(target, "brad", forgotten=True, after=status["log_seq"])
    assert (first.imported, first.skipped) == (3, 0)
    assert first.rejected == [
        {
            "id": ids["draft"],
            "memory_id": imported_id("brad", ids["draft"]),
            "check": "no-drafts",
            "reason": first.rejected[0]["reason"],
        }
    ]
    assert (again.imported, again.skipped, len(again.rejected)) == (0, 3, 1)
    assert after["log_seq"] == status["log_seq"]  # nothing new in the log
    shared = there["Nightly backups run at 03:00"]
    assert shared["id"] == imported_id("brad", ids["shared"])
    assert (shared["kind"], shared["tags"], shared["importance"]) == (
        "procedure",
        ["db", "ops"],
        0.8,
    )
    assert (shared["agent"], shared["instance"], shared["private"]) == ("brad", "new-model", False)
    assert there["I suspect the cache is too small"]["private"] is True
    assert there["The VPN endpoint is vpn1"]["forgotten"] is True
    assert there["The VPN endpoint is vpn1"]["forgotten_reason"] == "moved to vpn2"
    assert len(bundle.memories) == 4


async def test_import_by_another_agent_writes_the_memories_as_its_own(
    brad: SwarmClient, nats_url: str, second_swarm: str, tmp_path: Path
) -> None:
    ids = await remember_some(brad)
    await brad.get(ids["gone"], after=ids["seq"])
    await export_bundle(brad, tmp_path / "out", "brad")
    async with await SwarmClient.connect(
        nats_url, swarm=second_swarm, agent="carl", instance="x"
    ) as carl:
        report = await import_bundle(carl, read_bundle(tmp_path / "out"))
        status = await carl.status()
        mine = await contents(carl, "carl", after=status["log_seq"])
    assert (report.imported, report.left_out) == (2, 0)
    assert set(mine) == {"Nightly backups run at 03:00", "I suspect the cache is too small"}
    assert all(m["agent"] == "carl" for m in mine.values())


async def test_a_big_import_keeps_several_writes_in_flight(
    brad: SwarmClient, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    await asyncio.gather(*(brad.remember(f"bulk memory {i}", tags=["bulk"]) for i in range(60)))
    status = await brad.status()
    await brad.get((await brad.remember("last one")).id, after=status["log_seq"] + 1)
    bundle, _ = await export_bundle(brad, tmp_path / "out", "brad")
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="dora", instance="x"
    ) as dora:
        done: list[int] = []
        report = await import_bundle(dora, bundle, progress=lambda d, _t: done.append(d))
    assert report.imported == 61
    assert done[-1] == 61


async def test_the_sync_client_lists_memories_too(
    brad: SwarmClient, nats_url: str, swarm_name: str
) -> None:
    receipt = await brad.remember("Listed without async")

    def listing() -> list[dict[str, Any]]:
        with SyncSwarmClient(nats_url, swarm=swarm_name, agent="brad", instance="sync") as sync:
            return sync.memories(agent="brad", after=receipt.seq)

    rows = await asyncio.to_thread(listing)
    assert [m["content"] for m in rows] == ["Listed without async"]
