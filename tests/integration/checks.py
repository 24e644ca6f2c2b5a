"""What a crash test checks afterwards: the log holds each event once, and the live
projections equal a fresh rebuild from the log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.runner import Projector
from projections.service import store_paths
from swarm.codec import decode_log_entry
from swarm.embed import HashingEmbedder
from swarm.events import LogRecord
from swarm.jetstream import JetStreamLog

TABLES = ("events", "memories", "memory_versions", "crdt_docs")


async def logged_event_ids(log: JetStreamLog) -> tuple[list[str], int]:
    """The ids of the events in the log, in order, and how many system records
    (law records, proposals: not :class:`LogRecord`) it holds besides."""
    seen: list[str] = []
    system = 0
    async for batch in log.read(start_seq=1):
        entries = [decode_log_entry(m.subject, m.data) for m in batch]
        seen.extend(e.event.id for e in entries if isinstance(e, LogRecord))
        system += sum(1 for e in entries if not isinstance(e, LogRecord))
    return seen, system


@dataclass(frozen=True)
class Projected:
    checkpoint: int
    events: int
    recall: int


async def assert_projection_matches_rebuild(
    log: JetStreamLog, data: Path, swarm: str, workdir: Path
) -> Projected:
    """Rebuild the projections from the log under ``workdir`` and assert the live ones
    (of the stopped service, under ``data``) equal it, table by table; returns what
    the live ones hold."""
    duck_path, lance_path = store_paths(data, swarm)
    live = DuckStore(duck_path)
    await asyncio.to_thread(workdir.mkdir, parents=True)
    fresh = DuckStore(workdir / "state.duckdb")
    fresh_recall = LanceRecall(workdir / "recall", HashingEmbedder())
    try:
        await Projector(log, fresh, fresh_recall).rebuild()
        assert fresh.checkpoint() == live.checkpoint()
        live_digest, fresh_digest = live.table_digest(), fresh.table_digest()
        for table in TABLES:
            assert live_digest[table] == fresh_digest[table], table
        live_recall = LanceRecall(lance_path, HashingEmbedder())
        assert live_recall.count() == fresh_recall.count()
        return Projected(live.checkpoint(), live.counts()["events"], live_recall.count())
    finally:
        live.close()
        fresh.close()
