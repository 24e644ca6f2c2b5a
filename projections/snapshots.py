"""Recall as of a past log sequence: LanceDB tables of past states, built on demand.

``recall(query, as_of=S)`` must answer exactly as the swarm would have at S: the
same rows the projection held then, searched by the same hybrid code. The state
of every memory at S is in DuckDB (``memory_versions``: the latest version at or
before S), so a snapshot is a fresh :class:`~projections.lance.LanceRecall`
filled from those rows, in the same (seq, id) order and the same chunks as a
projection rebuilt up to S fills its own (:func:`fill_recall`, which
``Projector.catch_up_recall`` also uses). A search on it therefore equals a
search on a replay to S (``swarm replay --until S``), which the tests check.

Snapshots live under ``root/<seq>/`` (``<data>/swarms/<name>/asof/`` for the
service). The log never changes below its end, so a snapshot stays valid
forever; at most ``keep`` are kept on disk (the least recently used go first)
and at most ``keep_open`` are held in memory (each holds its vectors: about
``memories * dim * 4`` bytes). A build writes to a temporary directory and
renames it into place, so readers never see half a snapshot and two processes
may share a root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall, RecallHit
from projections.reducers import recall_row
from swarm.embed import Embedder
from swarm.errors import ConfigError, StoreError

__all__ = ["RECALL_CHUNK", "RecallSnapshots", "drop_snapshots", "fill_recall", "scrub_copy"]

log = structlog.get_logger(__name__)

#: Rows per LanceDB write when recall is filled from DuckDB (catch-up and snapshots).
RECALL_CHUNK = 20_000
_READY = "READY"


def fill_recall(
    recall: LanceRecall,
    chunks: Iterable[Sequence[Mapping[str, Any]]],
    mark: Callable[[int], None] | None = None,
) -> int:
    """Upsert memory rows, chunk by chunk, into ``recall``; ``mark(seq)`` after each.

    Returns the rows written. The one way recall is filled from DuckDB, so equal
    rows in equal chunks give equal tables (and equal search results).
    """
    fed = 0
    for rows in chunks:
        if not rows:
            continue
        recall.upsert([recall_row(m) for m in rows])
        fed += len(rows)
        if mark is not None:
            mark(int(rows[-1]["seq"]))
    return fed


def drop_snapshots(root: Path) -> int:
    """Delete the snapshot directories under ``root`` (finished or half-built)."""
    if not root.is_dir():
        return 0
    dropped = 0
    for path in root.iterdir():
        if path.is_dir() and (path.name.isdigit() or path.name.startswith(".build-")):
            shutil.rmtree(path, ignore_errors=True)
            dropped += 1
    return dropped


def scrub_copy(data_dir: Path, swarm: str, ids: Sequence[str], embedder: Embedder) -> None:
    """Erase memories from a replay's recall table and drop its snapshots (its DuckDB
    holds their content sealed). A recall table that cannot be opened goes whole: it
    is derived, and a new replay rebuilds it."""
    base = Path(data_dir) / "swarms" / swarm
    drop_snapshots(base / "asof")
    recall_dir = base / "recall"
    if not recall_dir.is_dir():
        return
    try:
        recall = LanceRecall(recall_dir, embedder)
        try:
            recall.scrub(ids)
        finally:
            recall.close()
    except (ConfigError, StoreError) as err:
        log.warning("replay_recall_removed", path=str(recall_dir), error=str(err))
        shutil.rmtree(recall_dir, ignore_errors=True)


@dataclass
class _Open:
    recall: LanceRecall
    users: int = 0


class RecallSnapshots:
    """Recall tables of past log sequences under ``root`` (see the module docstring)."""

    def __init__(
        self, root: str | Path, embedder: Embedder, *, keep: int = 8, keep_open: int = 2
    ) -> None:
        if keep < 1 or keep_open < 1:
            raise ConfigError("keep and keep_open must be at least 1")
        self.root = Path(root)
        self.embedder = embedder
        self.keep = keep
        self.keep_open = keep_open
        self._lock = threading.Lock()
        self._open: OrderedDict[int, _Open] = OrderedDict()
        self._building: dict[int, threading.Lock] = {}
        self.builds = 0
        self._closed = False

    def path(self, seq: int) -> Path:
        return self.root / str(seq)

    def search(self, store: DuckStore, seq: int, query: str, **options: Any) -> list[RecallHit]:
        """``LanceRecall.search`` on the snapshot at ``seq`` (built from ``store`` if
        needed; ``store`` must have applied ``seq``)."""
        recall = self._acquire(store, seq)
        try:
            return recall.search(query, **options)
        finally:
            self._release(seq)

    def cached(self) -> list[int]:
        """The sequences with a snapshot on disk, oldest use first."""
        if not self.root.is_dir():
            return []
        found = [
            (p.joinpath(_READY).stat().st_mtime, int(p.name))
            for p in self.root.iterdir()
            if p.name.isdigit() and p.joinpath(_READY).exists()
        ]
        return [seq for _, seq in sorted(found)]

    # -- the cache ----------------------------------------------------------------------

    def _acquire(self, store: DuckStore, seq: int) -> LanceRecall:
        with self._lock:
            if self._closed:
                raise StoreError(f"recall snapshots under {self.root} are closed")
            entry = self._open.get(seq)
            if entry is not None:
                entry.users += 1
                self._open.move_to_end(seq)
                return entry.recall
            building = self._building.setdefault(seq, threading.Lock())
        with building:
            with self._lock:
                entry = self._open.get(seq)
                if entry is not None:
                    entry.users += 1
                    return entry.recall
            recall = self._open_or_build(store, seq)
            with self._lock:
                self._open[seq] = _Open(recall, users=1)
                self._building.pop(seq, None)
                self._evict_locked()
        return recall

    def _release(self, seq: int) -> None:
        with self._lock:
            entry = self._open.get(seq)
            if entry is not None:
                entry.users -= 1
            self._evict_locked()

    def _evict_locked(self) -> None:
        idle = [s for s, e in self._open.items() if e.users == 0]
        for seq in idle[: max(0, len(self._open) - self.keep_open)]:
            self._open.pop(seq).recall.close()

    def _open_or_build(self, store: DuckStore, seq: int) -> LanceRecall:
        path = self.path(seq)
        if path.joinpath(_READY).exists():
            try:
                recall = LanceRecall(path, self.embedder)
            except (ConfigError, StoreError) as err:  # another embedder, or damaged
                log.warning("recall_snapshot_rebuilt", seq=seq, error=str(err))
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.joinpath(_READY).touch()
                return recall
        self._build(store, seq, path)
        return LanceRecall(path, self.embedder)

    def _build(self, store: DuckStore, seq: int, path: Path) -> None:
        if seq > store.checkpoint():
            raise StoreError(
                f"the projection has applied seq {store.checkpoint()}, not {seq}: "
                "cannot build recall as of it yet"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".build-{seq}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            recall = LanceRecall(tmp, self.embedder)
            try:
                rows = fill_recall(recall, store.memories_as_of(seq, RECALL_CHUNK))
            finally:
                recall.close()
            tmp.joinpath(_READY).write_text(f"{seq}\n")
            try:
                tmp.rename(path)
            except OSError:  # another process built it first: use theirs
                if not path.joinpath(_READY).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.builds += 1
        log.info(
            "recall_snapshot_built",
            seq=seq,
            rows=rows,
            seconds=round(time.perf_counter() - started, 3),
        )
        self._trim_disk(keep_also=seq)

    def _trim_disk(self, keep_also: int) -> None:
        """Drop the least recently used snapshots beyond ``keep`` (not those being read)."""
        on_disk = self.cached()
        for seq in on_disk[: max(0, len(on_disk) - self.keep)]:
            with self._lock:
                entry = self._open.get(seq)
                busy = seq in self._building or (entry is not None and entry.users > 0)
                if seq == keep_also or busy:
                    continue
                if entry is not None:
                    self._open.pop(seq).recall.close()
            shutil.rmtree(self.path(seq), ignore_errors=True)

    def drop_all(self) -> int:
        """Delete every snapshot (an erasure: they hold plain text of past states);
        the next as-of query builds its snapshot again. Returns the directories dropped."""
        with self._lock:
            for entry in self._open.values():
                entry.recall.close()
            self._open.clear()
        return drop_snapshots(self.root)

    def close(self) -> None:
        """Close the open snapshots (their directories stay, for the next start)."""
        with self._lock:
            self._closed = True
            for entry in self._open.values():
                entry.recall.close()
            self._open.clear()
