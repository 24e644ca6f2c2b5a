"""`swarm up`: start, stop cleanly, resume, and run side by side."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from swarm.client import SwarmClient
from swarm.errors import ChangeError
from swarm.server import free_port
from tests.integration.stack import ROOT, UpProcess

pytestmark = pytest.mark.integration


async def test_up_stops_on_sigterm_and_resumes_with_nothing_lost(tmp_path):
    port = free_port()
    up = UpProcess("--port", str(port), data=tmp_path).start()
    url = up.info["nats"]
    assert up.info["embedded"] is True
    assert (tmp_path / "nats" / "jetstream").is_dir()
    async with await SwarmClient.connect(url, agent="brad", instance="cloud") as c:
        receipts = [await c.remember(f"before restart {i}") for i in range(20)]
        await c.get(receipts[-1].id, after=receipts[-1].seq)
    started = time.monotonic()
    assert up.terminate() == 0
    assert time.monotonic() - started < 15

    up = UpProcess("--port", str(port), data=tmp_path).start()
    async with await SwarmClient.connect(url, agent="ann", instance="desk") as c:
        status = await c.status()
        assert status["log_seq"] == receipts[-1].seq
        assert status["memories"] == 20
        again = await c.remember("after restart")
        assert again.seq == receipts[-1].seq + 1
        assert (await c.get(receipts[0].id))["content"] == "before restart 0"
        assert (await c.get(again.id, after=again.seq))["content"] == "after restart"
        # The restarted gate learnt the existing ids from the log: no second creation.
        with pytest.raises(ChangeError, match="already exists"):
            await c.remember("a second root for an old id", memory_id=receipts[3].id)
    assert up.terminate() == 0


async def test_two_stacks_run_side_by_side(tmp_path):
    one = UpProcess("--port", str(free_port()), data=tmp_path / "one").start()
    two = UpProcess("--port", str(free_port()), data=tmp_path / "two").start()
    try:
        async with await SwarmClient.connect(one.info["nats"], agent="a", instance="x") as c1:
            r1 = await c1.remember("only in stack one")
            s1 = await c1.status()
        async with await SwarmClient.connect(two.info["nats"], agent="a", instance="x") as c2:
            s2 = await c2.status()
        assert s1["log_seq"] == r1.seq
        assert s2["log_seq"] == 1  # the default law's enactment only
    finally:
        assert one.terminate() == 0
        assert two.terminate() == 0


def test_up_refuses_a_port_in_use(tmp_path):
    port = free_port()
    up = UpProcess("--port", str(port), data=tmp_path / "a").start()
    try:
        with pytest.raises(RuntimeError, match="already in use"):
            UpProcess("--port", str(port), data=tmp_path / "b").start()
    finally:
        up.terminate()


async def test_up_enforces_the_laws_of_a_laws_file(tmp_path):
    from swarm.errors import LawViolation  # noqa: PLC0415

    laws = tmp_path / "laws.yaml"
    laws.write_text(
        "laws:\n"
        "  - id: no-secret-tags\n"
        "    description: secrets do not belong in shared memory\n"
        "    kind: deny_tags\n"
        "    params: {tags: [secret]}\n"
        "    action: reject\n"
    )
    up = UpProcess("--port", str(free_port()), "--laws", str(laws), data=tmp_path / "d").start()
    try:
        async with await SwarmClient.connect(up.info["nats"], agent="a", instance="x") as c:
            with pytest.raises(LawViolation) as info:
                await c.remember("the vault combination", tags=["secret"])
            assert info.value.law == "no-secret-tags"
            with pytest.raises(LawViolation) as info:  # the default law still runs first
                await c.remember("mail ops@example.org")
            assert info.value.law == "no-private-data"
            assert (await c.remember("an ordinary memory", tags=["ops"])).seq == 3  # after 2 laws
    finally:
        assert up.terminate() == 0


def test_a_law_file_asking_for_approval_runs_the_approval_flow_from_the_cli(tmp_path):
    laws = tmp_path / "laws.yaml"
    laws.write_text(
        "laws:\n"
        "  - id: ask-first\n"
        "    description: ask before forgetting others' memories\n"
        "    kind: destructive\n"
        "    action: require_approval\n"
    )
    up = UpProcess("--port", str(free_port()), "--laws", str(laws), data=tmp_path / "d").start()
    url = up.info["nats"]

    def swarm(*args: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", *args, "--url", url, "--json"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    try:
        made = swarm("remember", "The release branch is cut on Tuesdays", "--agent", "ann")
        held = swarm("forget", made["id"], "--agent", "bob", "--reason", "outdated")
        assert held["status"] == "pending" and held["id"] == made["id"]
        assert held["proposal"]
        listed = swarm("approvals")["proposals"]
        assert [(p["proposal"], p["agent"]) for p in listed] == [(held["proposal"], "bob")]
        assert swarm("get", made["id"], "--agent", "ann")["forgotten"] is False
        decided = swarm("approvals", "approve", held["proposal"], "--agent", "ann")
        assert decided["status"] == "approved"
        after = swarm("get", made["id"], "--agent", "ann", "--after", str(decided["event_seq"]))
        assert after["forgotten"] is True
        history = swarm("laws", "history")["history"]
        assert [(h["change"], h["law"]) for h in history] == [
            ("enacted", "no-private-data"),
            ("enacted", "ask-first"),
        ]
        assert [law["id"] for law in swarm("laws", "list")["laws"]] == [
            "no-private-data",
            "ask-first",
        ]
    finally:
        assert up.terminate() == 0
