"""Read a data directory offline: no NATS, no service, DuckDB opened read-only.

For a copy made by ``swarm replay --into DIR`` (or a stopped service's data
directory, or a backup of one), :class:`OfflineReader` answers ``get``,
``history``, ``recall`` and ``status``, now or as of a past log sequence or
time, in the shapes the read API gives, with the same privacy rules: a private
memory only for its agent, everything for ``_admin``. (Offline, whoever can read
the files can read every memory: the rules keep the answers the same, they do
not protect the files.)

A running service holds its DuckDB file locked, so opening its live data
directory fails with a :class:`~swarm.errors.StoreError` that says so: read
through the service, or replay a copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.layout import keystore_path, store_paths
from projections.replay import read_manifest
from projections.runner import visible
from projections.snapshots import RecallSnapshots
from swarm.diff import annotate
from swarm.embed import Embedder, load_embedder
from swarm.errors import ConfigError, NotFound, StoreError
from swarm.keystore import Keystore
from swarm.timeline import AsOf, parse_as_of

__all__ = ["OfflineReader"]


class OfflineReader:
    """Reads of one swarm's projections under ``data_dir``, as ``requester``."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        swarm: str = "default",
        requester: str | None = None,
        embedder: Embedder | None = None,
        keys: str | Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.swarm = swarm
        self.requester = requester
        duck_path, self.lance_path = store_paths(self.data_dir, swarm)
        if not duck_path.exists():
            raise StoreError(
                f"{self.data_dir} holds no projection of swarm {swarm!r} "
                f"(no {duck_path}): give the --data of `swarm up` or the --into of `swarm replay`"
            )
        self.manifest = read_manifest(self.data_dir)
        self._embedder = embedder
        try:
            self.store = DuckStore(duck_path, read_only=True)
        except StoreError as err:
            # Another process: "in use" (a file lock); this one: "different configuration".
            if "in use" not in str(err) and "different configuration" not in str(err):
                raise
            raise StoreError(
                f"{duck_path} is open in a running service (DuckDB allows one process per "
                "file while it writes): read through the service (without --data), or read "
                "a copy (`swarm replay --into DIR`, then --data DIR)"
            ) from None
        # Sealed content opens with the keystore: given, the one the replay used, or
        # the directory's own (a backup of a service's directory). Without: hidden.
        found = keys or (self.manifest or {}).get("keys") or keystore_path(self.data_dir, swarm)
        self.keys = Keystore(found) if Path(found).is_file() else None
        self.store.reveal = self.keys.reveal_row if self.keys is not None else None
        self._recall: LanceRecall | None = None
        self._snapshots: RecallSnapshots | None = None
        self._scratch: Path | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(os.environ.get("SWARM_EMBEDDER", "hashing"))
        return self._embedder

    # -- as of ------------------------------------------------------------------------

    def resolve(self, as_of: AsOf | str) -> int:
        """The sequence ``as_of`` names in this copy (a time: the last seq accepted then)."""
        point = parse_as_of(as_of)
        end = self.store.checkpoint()
        if isinstance(point, datetime):
            return self.store.seq_at(point)
        if point > end:
            raise ConfigError(f"as_of seq {point} is beyond the end of this copy (seq {end})")
        return point

    # -- the reads ----------------------------------------------------------------------

    def get(self, memory_id: str, *, as_of: AsOf | str | None = None) -> dict[str, Any]:
        """As ``SwarmClient.get``: NotFound if absent (then) or not visible."""
        seq = None if as_of is None else self.resolve(as_of)
        row = (
            self.store.get_memory(memory_id)
            if seq is None
            else self.store.memory_as_of(memory_id, seq)
        )
        found = visible(row, self.requester)
        if found is None:
            raise NotFound(f"no memory {memory_id}")
        return found if seq is None else {**found, "as_of": seq}

    def history(self, memory_id: str) -> dict[str, Any]:
        """As ``SwarmClient.history``: every version with its author and changes."""
        if visible(self.store.get_memory(memory_id), self.requester) is None:
            raise NotFound(f"no memory {memory_id}")
        return {"id": memory_id, "versions": annotate(self.store.history(memory_id))}

    def recall(
        self,
        query: str,
        *,
        k: int = 10,
        agent: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] = (),
        as_of: AsOf | str | None = None,
    ) -> list[dict[str, Any]]:
        """As ``SwarmClient.recall`` (hybrid search), now or as of a past point."""
        options: dict[str, Any] = {
            "k": max(1, min(k, 1000)),
            "requester": self.requester,
            "agent": agent,
            "kind": kind,
            "tags": list(tags),
        }
        if as_of is None:
            hits = self._live_recall().search(query, **options)
        else:
            hits = self._snapshot_cache().search(self.store, self.resolve(as_of), query, **options)
        return [dict(hit) for hit in hits]

    def status(self) -> dict[str, Any]:
        """As ``SwarmClient.status``; what only the log knows (its end, the inbox) is None."""
        projected = self.store.checkpoint()
        counts = self.store.counts()
        accepted, refusals = self.store.ingest_counts()
        return {
            "swarm": self.swarm,
            "log_seq": None,
            "projected_seq": projected,
            "lag": None,
            "memories": counts["memories"],
            "forgotten": counts["forgotten"],
            "rejected": self.store.checkpoint("rejections"),
            "inbox": None,
            "pending_approvals": counts["pending_approvals"],
            "lag_seconds": None,
            "proposed": None,
            "accepted": accepted,
            "rejections_by_law": refusals,
            "recall_latency_ms": None,
            "stream_bytes": None,
            "data": str(self.data_dir),
            "replay": self.manifest,
        }

    # -- stores -------------------------------------------------------------------------

    def _live_recall(self) -> LanceRecall:
        if self._recall is None:
            if not self.lance_path.is_dir():
                raise StoreError(f"{self.data_dir} holds no recall projection ({self.lance_path})")
            self._recall = LanceRecall(self.lance_path, self.embedder)
        return self._recall

    def _snapshot_cache(self) -> RecallSnapshots:
        """A replay copy keeps its snapshots (``asof/``); any other directory is only
        read, so its snapshots go to a temporary directory removed on close."""
        if self._snapshots is None:
            if self.manifest is not None:
                root = self.store.path.parent / "asof"
            else:
                self._scratch = root = Path(tempfile.mkdtemp(prefix="swarm-asof-"))
            self._snapshots = RecallSnapshots(root, self.embedder)
        return self._snapshots

    def close(self) -> None:
        if self._snapshots is not None:
            self._snapshots.close()
        if self._recall is not None:
            self._recall.close()
        self.store.close()
        if self.keys is not None:
            self.keys.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> OfflineReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
