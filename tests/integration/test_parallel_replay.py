"""A replay folded in worker processes (projections.parallel) equals the fold in one
process: the same tables, the same recall, erasures applied, resumable; its workers
never outlive it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from projections import parallel
from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.layout import store_paths
from projections.offline import OfflineReader
from projections.replay import replay
from projections.runner import Projector
from projections.service import SwarmService
from swarm.client import SwarmClient
from swarm.embed import HashingEmbedder

pytestmark = pytest.mark.integration

QUERIES = ("staging database", "tea at four", "runbook", "note 7")


async def tell(service: SwarmService, nats_url: str, swarm: str) -> dict[str, Any]:
    """~45 log entries: several memories by two agents, edits crossing them, a
    forgotten one, a private one, an erasure (a system record) and an entry written
    around the gate (unreadable)."""
    assert service.log is not None
    secret = f"zephyrine{os.urandom(4).hex()}"
    async with (
        await SwarmClient.connect(nats_url, swarm=swarm, agent="brad", instance="c") as brad,
        await SwarmClient.connect(nats_url, swarm=swarm, agent="ann", instance="d") as ann,
    ):
        db = await brad.remember("The staging database moves on Friday", tags=["db"])
        doomed = await brad.remember(f"{secret} takes her tea at four", tags=["tea"])
        notes = [await ann.remember(f"note {i} about the runbook") for i in range(10)]
        private = await ann.remember("Ann's private note", private=True)
        for i, note in enumerate(notes):
            await (ann if i % 2 else brad).update(note.id, content=f"note {i} moved to the wiki")
        await brad.update(doomed.id, content=f"{secret} now takes her tea at five")
        await ann.update(db.id, content="The staging database moves on Saturday")
        await ann.reinforce(db.id)
        await brad.forget(notes[8].id, reason="moved")
        await brad.erase([doomed.id], reason="asked to")
        for note in notes[:6]:
            await ann.reinforce(note.id)
        await ann.update(private.id, content="Ann's private note, edited")
        last = await ann.update(db.id, add_tags=["ops"])
        await ann.get(db.id, after=last.seq)
    # Last (the gate would not chain after it): an entry written around the gate.
    await service.log.js.publish(service.log.subjects.log("ann", db.id), b'{"forged": 1}')
    return {"secret": secret, "doomed": doomed.id, "db": db.id, "seq": last.seq}


def digest(copy: Path, swarm: str) -> dict[str, str]:
    duck, _ = store_paths(copy, swarm)
    with DuckStore(duck, read_only=True) as store:
        return store.table_digest()


def recall_ids(copy: Path, swarm: str) -> list[list[str]]:
    with OfflineReader(copy, swarm=swarm, requester="ann") as offline:
        return [[h["id"] for h in offline.recall(q, k=5)] for q in QUERIES]


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def fold_workers() -> list[int]:
    """This process's children running a fold worker."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"worker_main" in cmdline:
            out.append(int(proc.name))
    return out


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def copy_of(service: SwarmService, into: Path, **kw: Any) -> Any:
    assert service.log is not None and service.keys is not None
    return await replay(service.log, into, keys=service.keys.path, **kw)


async def test_a_replay_in_worker_processes_equals_one_in_this_process(
    service: SwarmService, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    story = await tell(service, nats_url, swarm_name)

    here = await copy_of(service, tmp_path / "here", workers=0)
    two = await copy_of(service, tmp_path / "two", workers=2, batch=4)
    three = await copy_of(service, tmp_path / "three", workers=3, batch=7)

    assert here.seq == two.seq == three.seq >= story["seq"]
    assert here.memories == two.memories == three.memories
    expected = digest(tmp_path / "here", swarm_name)
    assert digest(tmp_path / "two", swarm_name) == expected
    assert digest(tmp_path / "three", swarm_name) == expected
    hits = recall_ids(tmp_path / "here", swarm_name)
    assert hits[0] and recall_ids(tmp_path / "two", swarm_name) == hits
    assert recall_ids(tmp_path / "three", swarm_name) == hits
    # The erasure applied: the memory's text is in no file of the copies.
    with OfflineReader(tmp_path / "two", swarm=swarm_name, requester="brad") as offline:
        assert offline.get(story["doomed"])["content"] == ""
    assert files_holding(tmp_path / "two", story["secret"].encode()) == []
    assert fold_workers() == []


async def test_a_replay_in_worker_processes_resumes_from_its_checkpoint(
    service: SwarmService, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    story = await tell(service, nats_url, swarm_name)
    copy = tmp_path / "copy"

    first = await copy_of(service, copy, until=story["seq"] // 2, workers=2, batch=3)
    rest = await copy_of(service, copy, workers=2, batch=5)
    fresh = await copy_of(service, tmp_path / "fresh", workers=0)

    assert (first.resumed_from, rest.resumed_from) == (0, first.seq)
    assert rest.seq == fresh.seq
    assert digest(copy, swarm_name) == digest(tmp_path / "fresh", swarm_name)
    assert recall_ids(copy, swarm_name) == recall_ids(tmp_path / "fresh", swarm_name)


async def test_documents_a_worker_evicted_are_reloaded_from_their_saved_bytes(
    service: SwarmService, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    await tell(service, nats_url, swarm_name)
    digests = []
    for workers, cache in ((0, 100_000), (2, 2)):
        path = tmp_path / f"w{workers}"
        store = DuckStore(path / "state.duckdb")
        projector = Projector(
            service.log, store, LanceRecall(path / "recall", HashingEmbedder()), cache_size=cache
        )
        try:
            await projector.rebuild(workers=workers, batch=3)
            digests.append(store.table_digest())
        finally:
            projector.close()
    assert digests[0] == digests[1]


async def test_a_record_on_another_memorys_subject_sends_the_replay_back_to_one_process(
    service: SwarmService, nats_url: str, swarm_name: str, tmp_path: Path
) -> None:
    story = await tell(service, nats_url, swarm_name)
    assert service.log is not None
    # Written around the gate: a real record, on the subject of another memory.
    records = [
        m.data
        async for batch in service.log.read(start_seq=1)
        for m in batch
        if ".log." in m.subject and not m.subject.endswith(story["db"])
    ]
    await service.log.js.publish(service.log.subjects.log("ann", story["db"]), records[0])

    parallel_copy = await copy_of(service, tmp_path / "two", workers=2, batch=4)
    here = await copy_of(service, tmp_path / "here", workers=0)

    assert parallel_copy.seq == here.seq
    assert digest(tmp_path / "two", swarm_name) == digest(tmp_path / "here", swarm_name)
    assert fold_workers() == []


@pytest.mark.parametrize("how", ["error", "cancel"])
async def test_the_workers_stop_when_the_replay_fails_or_is_cancelled(
    service: SwarmService,
    nats_url: str,
    swarm_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    await tell(service, nats_url, swarm_name)
    started = asyncio.Event()
    pids: list[int] = []

    async def collect(pool: parallel.FoldPool, *args: object) -> Any:
        pids.extend(w.process.pid for w in pool._workers)
        started.set()
        if how == "error":
            raise RuntimeError("the merge broke")
        await asyncio.Event().wait()  # until cancelled

    monkeypatch.setattr(parallel.FoldPool, "collect", collect)
    task = asyncio.create_task(copy_of(service, tmp_path / "copy", workers=2, batch=4))
    await asyncio.wait_for(started.wait(), 60)
    if how == "cancel":
        task.cancel()
    with pytest.raises(asyncio.CancelledError if how == "cancel" else RuntimeError):
        await task

    assert len(pids) == 2
    assert fold_workers() == []
    assert not [pid for pid in pids if exists(pid)]  # reaped: no zombie either
    # The copy is left resumable: a later replay into it completes it.
    monkeypatch.undo()
    done = await copy_of(service, tmp_path / "copy", workers=2, batch=4)
    fresh = await copy_of(service, tmp_path / "fresh", workers=0)
    assert done.seq == fresh.seq
    assert digest(tmp_path / "copy", swarm_name) == digest(tmp_path / "fresh", swarm_name)
