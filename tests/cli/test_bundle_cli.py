"""`swarm export` and `swarm import` against an in-process service.

CliRunner runs in a worker thread (each command runs its own event loop) while the
service keeps running on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from projections.service import SwarmService
from swarm.bundle import Bundle, render_soul, write_bundle
from swarm.client import SwarmClient
from swarm.identity import Credentials
from swarm.laws import LawSpec, build_law_set, default_specs
from swarm.transfer import imported_id

pytestmark = pytest.mark.integration

Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def swarm(service: object, nats_url: str, swarm_name: str) -> Run:
    """`swarm ARGS --url … --name …` in a thread; checks the exit status."""

    async def run(*args: str, name: str = swarm_name, code: int = 0) -> Result:
        argv = [*args, "--url", nats_url, "--name", name, "--instance", "cli"]
        result = await asyncio.to_thread(CliRunner().invoke, main, argv)
        assert result.exit_code == code, result.output + result.stderr
        return result

    return run


@pytest.fixture
async def brad(service: object, nats_url: str, swarm_name: str) -> AsyncIterator[SwarmClient]:
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as client:
        yield client


@pytest.fixture
async def second_swarm(nats_url: str, swarm_name: str, tmp_path: Path) -> AsyncIterator[str]:
    name = f"{swarm_name}-b"
    no_drafts = LawSpec(
        id="no-drafts", kind="deny_tags", params={"tags": ["draft"]}, action="reject"
    )
    laws = build_law_set([*default_specs(), no_drafts], allow_approval=True)
    async with SwarmService(nats_url, swarm=name, data_dir=tmp_path / "second", laws=laws):
        yield name


async def remember_some(brad: SwarmClient) -> dict[str, Any]:
    shared = await brad.remember("Backups run at 03:00", tags=["ops"], importance=0.8)
    mine = await brad.remember("I think the cache is too small", private=True)
    last = await brad.remember("Draft: Postgres 17", tags=["draft"], kind="idea")
    await brad.get(last.id, after=last.seq)
    return {"shared": shared.id, "mine": mine.id, "draft": last.id}


async def test_export_then_import_twice_writes_each_memory_once(
    swarm: Run, brad: SwarmClient, second_swarm: str, tmp_path: Path
) -> None:
    ids = await remember_some(brad)
    out = tmp_path / "brad-bundle"
    exported = json.loads((await swarm("export", "--agent", "brad", str(out), "--json")).stdout)
    assert (exported["agent"], exported["memories"], exported["topics"]) == ("brad", 3, 3)
    assert {"SOUL.md", "MEMORY.md", "bundle.json", "memories.jsonl"} <= set(exported["files"])
    assert "memory/fact-ops.md" in exported["files"]

    first = await swarm("import", str(out), "--json", name=second_swarm, code=1)
    summary = json.loads(first.stdout)
    assert (summary["imported"], summary["skipped"]) == (2, 0)
    assert [(r["id"], r["check"]) for r in summary["rejected"]] == [(ids["draft"], "no-drafts")]
    assert "error: 1 memory rejected (listed above)" in first.stderr

    again = json.loads(
        (await swarm("import", str(out), "--json", name=second_swarm, code=1)).stdout
    )
    assert (again["imported"], again["skipped"]) == (0, 2)

    got = await swarm(
        "get", imported_id("brad", ids["mine"]), "--agent", "brad", "--json", name=second_swarm
    )
    memory = json.loads(got.stdout)
    assert (memory["content"], memory["private"], memory["agent"]) == (
        "I think the cache is too small",
        True,
        "brad",
    )


async def test_export_as_another_agent_leaves_private_memories_out(
    swarm: Run, brad: SwarmClient, swarm_name: str, tmp_path: Path
) -> None:
    await remember_some(brad)
    ann = Credentials.generate(swarm_name, "ann").save(tmp_path / "ann.creds.json")
    admin = Credentials.generate(swarm_name, "admin", role="admin").save(tmp_path / "admin.json")
    as_ann = await swarm(
        "export", "--agent", "brad", "--creds", str(ann), str(tmp_path / "a"), "--json"
    )
    as_admin = await swarm(
        "export", "--agent", "brad", "--creds", str(admin), str(tmp_path / "b"), "--json"
    )
    assert json.loads(as_ann.stdout)["memories"] == 2
    assert json.loads(as_admin.stdout)["memories"] == 3
    assert "cache" not in (tmp_path / "a" / "memories.jsonl").read_text()
    assert "cache" in (tmp_path / "b" / "memories.jsonl").read_text()


async def test_export_carries_the_given_soul_unchanged_and_needs_an_agent(
    swarm: Run, brad: SwarmClient, tmp_path: Path
) -> None:
    await remember_some(brad)
    soul = tmp_path / "SOUL.md"
    soul.write_bytes(b"---\nname: Brad\nagent: brad\n---\n\n# Brad \xe2\x80\x94 as he wrote it\n")
    out = tmp_path / "out"
    done = await swarm("export", "--agent", "brad", "--soul", str(soul), str(out))
    assert done.stdout.startswith(f"exported 3 memories of brad in 3 topics to {out}")
    assert (out / "SOUL.md").read_bytes() == soul.read_bytes()
    refused = await swarm("export", str(tmp_path / "other"), code=1)
    assert refused.stderr == "error: give --agent: whose memories to export\n"


async def test_dry_run_lists_the_writes_and_writes_nothing(
    swarm: Run, brad: SwarmClient, tmp_path: Path
) -> None:
    ids = await remember_some(brad)
    await swarm("export", "--agent", "brad", str(tmp_path / "out"))
    before = (await brad.status())["log_seq"]
    listed = await swarm("import", str(tmp_path / "out"), "--agent", "carl", "--dry-run", "--json")
    plan = json.loads(listed.stdout)
    assert (plan["dry_run"], plan["agent"], plan["left_out"]) == (True, "carl", 0)
    assert [m["source_id"] for m in plan["memories"]] == [ids["shared"], ids["mine"], ids["draft"]]
    assert plan["memories"][0]["id"] == imported_id("brad", ids["shared"])
    text = (await swarm("import", str(tmp_path / "out"), "--dry-run")).stdout
    assert text.splitlines()[-1] == "would write 3 memories as brad"
    assert (await brad.status())["log_seq"] == before


async def test_a_big_import_reports_progress_on_stderr(
    swarm: Run, service: object, swarm_name: str, tmp_path: Path
) -> None:
    rows = [
        {"id": f"01BULKMEMORY{i:014d}", "content": f"bulk memory {i}", "agent": "zed", "seq": i}
        for i in range(1, 121)
    ]
    write_bundle(
        tmp_path / "big", Bundle.of("zed", rows, swarm="elsewhere"), soul=render_soul("zed")
    )
    result = await swarm("import", str(tmp_path / "big"))
    assert result.stderr.splitlines()[-1] == "imported 120/120"
    assert result.stdout == "imported 120, 0 already there (as zed)\n"


async def test_importing_what_is_not_a_bundle_is_one_error_line(swarm: Run, tmp_path: Path) -> None:
    result = await swarm("import", str(tmp_path), code=1)
    assert result.stderr == f"error: {tmp_path} holds no bundle (no bundle.json)\n"
