"""Erasure for real: after `forget --erase`, the text is in no file of the log, the
projections, the snapshots or the replays; the tombstone stays and the chain verifies."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from projections.offline import OfflineReader
from projections.replay import replay
from projections.service import SwarmService
from swarm.client import SwarmClient
from swarm.errors import Rejected
from swarm.server import NatsServer

pytestmark = pytest.mark.integration


def files_holding(roots: list[Path], needles: list[bytes]) -> list[str]:
    """Every file under ``roots`` whose bytes hold one of ``needles`` (case-insensitive)."""
    lowered = [n.lower() for n in needles]
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes().lower()
            found += [f"{path} holds {n!r}" for n in lowered if n in data]
    return found


def forms(word: str) -> list[bytes]:
    """The word as UTF-8 and in base64 at the three alignments (a text inside a
    base64 field, as changes travel in JSON)."""
    raw = word.encode()
    shifted = [base64.b64encode(b"\0" * i + raw)[4 if i else 0 : -4] for i in range(3)]
    return [raw, *shifted]


async def test_an_erased_memory_is_in_no_file_and_the_chain_still_verifies(
    service: SwarmService, nats_server: NatsServer, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    secret = f"zephyrine{os.urandom(4).hex()}"  # one word: LanceDB's full-text index keeps words
    kept = f"keepsake{os.urandom(4).hex()}"
    assert service.keys is not None
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as brad:
        doomed = await brad.remember(f"{secret} takes her tea at four", tags=["tea"])
        await brad.update(doomed.id, content=f"{secret} now takes her tea at five")
        await brad.reinforce(doomed.id)
        other = await brad.remember(f"The {kept} stays in the drawer")
        last = await brad.get(other.id, after=other.seq)
        # Derived copies holding plain text: an as-of snapshot, a replay and its snapshot.
        assert (await brad.recall(secret, as_of=doomed.seq))[0]["id"] == doomed.id
        copy = tmp_path / "copy"
        await replay(service.log, copy, keys=service.keys.path)  # type: ignore[arg-type]
        with OfflineReader(copy, swarm=swarm_name, requester="brad") as offline:
            assert offline.recall(secret, as_of=doomed.seq)[0]["id"] == doomed.id
        key = service.keys.key_for(doomed.id)
        assert key is not None
        roots = [nats_server.store_dir, service.data_dir, copy]
        # The scan sees plain text where it is (LanceDB), and the log holds it sealed only.
        assert files_holding([service.data_dir / "swarms", copy], [secret.encode()])
        assert not files_holding([nats_server.store_dir], forms(secret))

        result = await brad.erase([doomed.id], reason="GDPR request 114")

        assert result["erased"] == [doomed.id] and result["keys"] == 1
        gone = await brad.get(doomed.id)
        assert (gone["erased"], gone["content"]) == (True, "")
        assert (await brad.get(other.id))["content"] == last["content"]
        # (Vector recall still returns the nearest memories left: the other one.)
        assert doomed.id not in [h["id"] for h in await brad.recall(secret)]
        assert doomed.id not in [h["id"] for h in await brad.recall(secret, as_of=doomed.seq)]
        history = await brad.history(doomed.id)
        assert {v["state"]["content"] for v in history["versions"]} == {""}
        with pytest.raises(Rejected, match="was erased") as refused:
            await brad.update(doomed.id, content="back again")
        assert refused.value.check == "sealed"
        with pytest.raises(Rejected, match="was erased"):
            await brad.reinforce(doomed.id)
        again = await brad.erase([doomed.id], reason="twice")
        assert (again["erased"], again["already"]) == ([], [doomed.id])

    # Nothing of it anywhere: NATS's store, DuckDB, LanceDB, snapshots, keystore, replay.
    assert files_holding(roots, [*forms(secret), key.key]) == []
    assert files_holding([service.data_dir / "swarms"], [kept.encode()])  # the rest stays
    with OfflineReader(copy, swarm=swarm_name, requester="brad") as offline:
        assert offline.get(doomed.id)["erased"] is True
        assert doomed.id not in [h["id"] for h in offline.recall(secret)]
    # A replay made after the erasure cannot show it either.
    later = tmp_path / "later"
    await replay(service.log, later, keys=service.keys.path)  # type: ignore[arg-type]
    with OfflineReader(later, swarm=swarm_name, requester="brad") as offline:
        assert offline.get(doomed.id)["content"] == ""
        assert doomed.id not in [h["id"] for h in offline.recall(secret)]
    assert files_holding([later], forms(secret)) == []

    # The tombstone: who, when, why; the chain verifies around it.
    runner = CliRunner()
    common = ["--url", nats_url, "--name", swarm_name, "--json"]
    audit = await asyncio.to_thread(runner.invoke, main, ["audit", *common])
    events = json.loads(audit.stdout)["events"]
    [tomb] = [e for e in events if e["type"] == "memory.erased"]
    assert tomb["memory_id"] == doomed.id
    verified = await asyncio.to_thread(runner.invoke, main, ["audit", "--verify", *common])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True


async def test_erasing_a_data_subject_takes_what_is_filed_under_and_what_names_them(
    service: SwarmService, nats_url: str, swarm_name: str
) -> None:
    assert service.keys is not None
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="ann", instance="desk"
    ) as ann:
        filed = await ann.remember("Prefers morning meetings", about=["Dana Whitfield"])
        named = await ann.remember("Met dana  whitfield about the Q3 budget")
        renamed = await ann.remember("A budget note")
        await ann.update(renamed.id, content="Budget note: ask Dana Whitfield")
        await ann.update(renamed.id, content="Budget note: ask finance")  # named in the past
        unrelated = await ann.remember("Danaher Whitfieldson runs the canteen")
        await ann.get(unrelated.id, after=unrelated.seq)

        plan = await ann.erase(about="dana whitfield", reason="request", dry_run=True)
        why = {m["id"]: m["why"] for m in plan["plan"]["memories"]}
        assert why == {filed.id: "about", named.id: "mentions", renamed.id: "mentions"}
        assert plan["erased"] == [] and (await ann.get(filed.id))["content"]
        only_filed = await ann.erase(
            about="Dana Whitfield", reason="request", mentions=False, dry_run=True
        )
        assert [m["id"] for m in only_filed["plan"]["memories"]] == [filed.id]

        done = await ann.erase(about="Dana Whitfield", reason="erasure request 7")
        assert sorted(done["erased"]) == sorted(why)
        for mid in why:
            assert (await ann.get(mid))["erased"] is True
        assert (await ann.get(unrelated.id))["content"] == "Danaher Whitfieldson runs the canteen"
    # The name was only ever in the keystore: it is gone from there too.
    assert service.keys.memories_about("Dana Whitfield") == []
    assert files_holding([service.keys.path.parent], [b"dana whitfield"]) == []


async def test_the_cli_erases_with_a_dry_run_first(
    service: SwarmService, nats_url: str, swarm_name: str
) -> None:
    runner = CliRunner()
    common = ["--url", nats_url, "--name", swarm_name, "--agent", "brad", "--instance", "cli"]

    async def swarm(*args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(runner.invoke, main, [*args, *common])
        return result.exit_code, result.output

    code, out = await swarm("remember", "Owes Lee a coffee", "--about", "Lee Park", "--json")
    mid = json.loads(out)["id"]
    code, out = await swarm("forget", "--about", "Lee Park", "--erase", "--dry-run")
    assert code == 0 and out.splitlines()[0] == "would erase 1 memories"
    assert mid in out and "about" in out
    code, out = await swarm("forget", mid, "--erase")
    assert code == 2 and "--reason" in out
    code, out = await swarm("forget", mid, "--erase", "--reason", "asked", "--json")
    assert code == 0, out
    assert json.loads(out)["erased"] == [mid]
    code, out = await swarm("get", mid)
    assert code == 0 and "(erased)" in out and "Owes Lee" not in out


async def test_the_tombstone_finishes_an_erasure_the_gate_could_not(
    nats_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate fails right after appending the tombstone (before destroying the key):
    the projector, folding the tombstone, destroys it; a restart re-applies it too."""
    from swarm.keystore import Keystore  # noqa: PLC0415

    data = tmp_path / "data"
    real = Keystore.destroy
    calls: list[str] = []

    def first_fails(self: Keystore, *args: Any, **kwargs: Any) -> list[str]:
        calls.append("destroy")
        if len(calls) == 1:
            raise RuntimeError("power cut")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Keystore, "destroy", first_fails)
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=data) as svc:
        async with await SwarmClient.connect(
            nats_url, swarm=swarm_name, agent="brad", instance="cloud"
        ) as brad:
            doomed = await brad.remember("Octavia Pennywhistle owes us a report")
            await brad.get(doomed.id, after=doomed.seq)
            with pytest.raises(Exception, match="power cut"):
                await brad.erase([doomed.id], reason="request")
            status = await brad.status()
            gone = await brad.get(doomed.id, after=status["log_seq"])
            assert (gone["erased"], gone["content"]) == (True, "")
        assert svc.keys is not None and svc.keys.key_for(doomed.id) is None
    async with (
        SwarmService(nats_url, swarm=swarm_name, data_dir=data),
        await SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="b") as brad,
    ):
        assert (await brad.get(doomed.id))["erased"] is True
        again = await brad.erase([doomed.id], reason="request")
        assert again["already"] == [doomed.id]
    assert files_holding([data], [b"pennywhistle"]) == []
