"""Replay the log into a separate directory: fresh projections as of a past point.

``swarm replay --until SEQ|TIME --into DIR`` reads the LOG over NATS and folds it
with the projector's own :meth:`~projections.runner.Projector.rebuild` into
``DIR/swarms/<swarm>/state.duckdb`` and ``recall/`` (the layout of a live data
directory, so every offline read works on it), never touching the service's
own data. ``DIR/replay.json`` says what the directory holds::

    {"format": "swarm-replay", "version": 1, "swarm": "default", "until_seq": 4211,
     "seq": 4211, "log_seq": 5120, "embedder": "hashing-384", "status": "complete",
     "started_at": "...", "finished_at": "..."}

A directory is accepted when it is new or empty, or holds a replay of the same
swarm of the same log that is not past the point asked for: the replay then
resumes from its checkpoint (DuckDB holds the checkpoint in the same transaction
as its rows). Anything else is refused. LanceDB is always filled afresh at the
end, from DuckDB, so a resumed replay and a fresh one to the same point hold
identical tables and answer recall identically.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.layout import store_paths
from projections.runner import Projector
from swarm.codec import decode_log_entry
from swarm.embed import Embedder, load_embedder
from swarm.errors import ConfigError, SchemaError, StoreError
from swarm.events import LogRecord, utcnow
from swarm.identity import Credentials
from swarm.jetstream import JetStreamLog, connect
from swarm.keystore import Keystore
from swarm.subjects import Subjects
from swarm.timeline import AsOf, last_seq_at

__all__ = [
    "MANIFEST",
    "ReplaySummary",
    "read_manifest",
    "replay",
    "replay_from",
    "resolve_until",
]

MANIFEST = "replay.json"
FORMAT = "swarm-replay"

#: ``progress(done, total)``: log entries applied so far, of those to apply.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReplaySummary:
    """What one replay did."""

    swarm: str
    into: str
    duckdb: str
    lancedb: str
    until_seq: int
    seq: int  # the sequence the copy has reached
    resumed_from: int  # the copy's checkpoint before this run (0: a fresh copy)
    events: int  # log entries applied by this run
    memories: int
    seconds: float
    rate: float  # events per second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_manifest(data_dir: str | Path) -> dict[str, Any] | None:
    """``DIR/replay.json``, or None when the directory holds no replay."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StoreError(f"{path} is not a readable replay manifest: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a replay manifest")
    return manifest


def _absolute(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).absolute())


def _write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    path = data_dir / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


async def resolve_until(log: JetStreamLog, until: AsOf | None) -> tuple[int, int]:
    """(the sequence ``until`` names, the log's last sequence). A time names the last
    entry accepted at or before it; a sequence past the log's end is refused."""
    last = await log.last_seq()
    if until is None:
        return last, last
    if isinstance(until, datetime):
        return await last_seq_at(until, last, lambda seq: _accepted_at(log, seq)), last
    if until > last:
        raise ConfigError(f"--until {until} is beyond the end of the log (seq {last})")
    return until, last


async def _accepted_at(log: JetStreamLog, seq: int) -> datetime | None:
    """When the gate accepted the LOG entry at ``seq`` (None if it is unreadable)."""
    async for batch in log.read(start_seq=seq, until_seq=seq, batch=1):
        for msg in batch:
            try:
                entry = decode_log_entry(msg.subject, msg.data)
            except SchemaError:
                return None
            return entry.accepted_at if isinstance(entry, LogRecord) else entry.at
    return None


def _check_target(into: Path, swarm: str) -> dict[str, Any] | None:
    """Refuse a directory that holds anything but a replay of ``swarm``; its manifest."""
    if into.exists() and not into.is_dir():
        raise ConfigError(f"{into} is not a directory")
    manifest = read_manifest(into) if into.is_dir() else None
    if manifest is None:
        if into.is_dir() and any(into.iterdir()):
            raise ConfigError(
                f"{into} is not empty and holds no replay: replay into a new or empty "
                "directory (a service's data directory is never replayed into)"
            )
        return None
    if manifest.get("swarm") != swarm:
        raise ConfigError(
            f"{into} holds a replay of swarm {manifest.get('swarm')!r}, not {swarm!r}: "
            "choose another directory"
        )
    return manifest


async def _check_same_log(log: JetStreamLog, store: DuckStore, into: Path) -> None:
    """The copy must come from this log: the event at its checkpoint must match."""
    checkpoint = store.checkpoint()
    if checkpoint == 0:
        return
    mine = await asyncio.to_thread(store.events_since, checkpoint - 1, 1)
    theirs = await log.event_id_at(checkpoint)
    if mine and mine[0]["seq"] == checkpoint and mine[0]["event_id"] != theirs:
        raise ConfigError(
            f"{into} holds a replay of another log (seq {checkpoint} differs): "
            "choose another directory"
        )


#: A replay writes its DuckDB copy as one bulk load (nothing reads it meanwhile):
#: the WAL goes into the file (a checkpoint) only once it is this big, not every
#: 16 MB (the default: nearly every batch, each time rewriting the tables' last row
#: groups and indexes), and strings and blobs are compressed with zstd, not by
#: trying the lighter methods on each segment. At 100k events DuckDB took 120 µs
#: per event with the defaults, 73 µs with these, and the file is 199 MB, not 384.
BULK_SETTINGS = (
    "SET checkpoint_threshold = '1GB'",
    "SET force_compression = 'zstd'",
)


def _bulk_load(store: DuckStore) -> None:
    """Settings for a copy that nothing reads while it is built (its own database;
    they last while it is open, readers later open it with the defaults)."""
    with store._reader("replay settings") as cur:
        for statement in BULK_SETTINGS:
            cur.execute(statement)


async def replay(
    log: JetStreamLog,
    into: str | Path,
    *,
    until: AsOf | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    batch: int = 5000,
    keys: str | Path | None = None,
    workers: int | None = None,
) -> ReplaySummary:
    """Fold the log up to ``until`` (a sequence or a time; default: its end) into
    fresh projections under ``into`` (see the module docstring).

    ``workers``: fold processes (see :mod:`projections.parallel`): None chooses by the
    length of the log and the CPUs (one process below ``parallel.PARALLEL_MIN``
    entries); 0 folds in this process.

    ``keys``: the service's keystore, to open sealed content for the recall tables.
    The copy is registered in it, so an erasure scrubs the copy too; its DuckDB, like
    the service's, holds content sealed. Without it, content stays hidden in the copy.
    """
    into = Path(into)
    swarm = log.subjects.swarm
    manifest = _check_target(into, swarm)
    until_seq, log_seq = await resolve_until(log, until)
    embedder = embedder or load_embedder(os.environ.get("SWARM_EMBEDDER", "hashing"))
    duck_path, lance_path = store_paths(into, swarm)
    started = time.perf_counter()
    fresh = {
        "format": FORMAT,
        "version": 1,
        "swarm": swarm,
        "until_seq": until_seq,
        "seq": 0,
        "log_seq": log_seq,
        "embedder": embedder.name,
        "keys": _absolute(keys),
        "status": "running",
        "started_at": utcnow().isoformat(),
        "finished_at": None,
    }
    if manifest is None:  # first: a crash from here on leaves a directory it may resume
        duck_path.parent.mkdir(parents=True, exist_ok=True)
        _write_manifest(into, fresh)
    keystore = Keystore(keys) if keys is not None else None
    if keystore is not None:
        keystore.register_copy(into)
    store = DuckStore(duck_path)
    try:
        _bulk_load(store)
        resumed_from = store.checkpoint()
        if resumed_from > until_seq:
            raise ConfigError(
                f"{into} holds a replay up to seq {resumed_from}, past {until_seq}: "
                "replay into another directory"
            )
        await _check_same_log(log, store, into)
        manifest = {**fresh, "seq": resumed_from}
        _write_manifest(into, manifest)
        # Recall is filled afresh from DuckDB at the end (identical for every replay to
        # the same point), so whatever a previous run left there goes.
        shutil.rmtree(lance_path, ignore_errors=True)
        recall = LanceRecall(lance_path, embedder)
        projector = Projector(log, store, recall, keys=keystore)
        total = until_seq - resumed_from
        try:
            seq = await projector.rebuild(
                until_seq=until_seq,
                progress=None if progress is None else lambda s: progress(s - resumed_from, total),
                batch=batch,
                workers=workers,
            )
            memories = recall.count()
        finally:
            projector.close()  # closes the store too
    except BaseException:
        store.close()
        raise
    finally:
        if keystore is not None:
            keystore.close()
    seconds = time.perf_counter() - started
    manifest.update(seq=seq, status="complete", finished_at=utcnow().isoformat())
    _write_manifest(into, manifest)
    events = seq - resumed_from
    return ReplaySummary(
        swarm=swarm,
        into=str(into),
        duckdb=str(duck_path),
        lancedb=str(lance_path),
        until_seq=until_seq,
        seq=seq,
        resumed_from=resumed_from,
        events=events,
        memories=memories,
        seconds=round(seconds, 3),
        rate=round(events / seconds, 1) if seconds > 0 else 0.0,
    )


async def replay_from(
    url: str,
    into: str | Path,
    *,
    swarm: str = "default",
    until: AsOf | None = None,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
    keys: str | Path | None = None,
) -> ReplaySummary:
    """:func:`replay` over a connection of its own to ``url`` (admin ``credentials``
    once the swarm has registered agents)."""
    nc = await connect(url, name=f"swarm-replay:{swarm}", credentials=credentials)
    try:
        return await replay(
            JetStreamLog(nc, Subjects(swarm)), into, until=until, progress=progress, keys=keys
        )
    finally:
        await nc.close()
