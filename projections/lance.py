"""The recall projection: memories in LanceDB, searched by meaning and by words.

Design, from measurements on the 2-core dev box (100k memories, 384-d hashing
vectors, ``bench/bench_recall.py``; ranges span a quiet and a busy machine):

* LanceDB is the durable store and the full-text engine: one row per memory
  (current state) with its embedding, and a native BM25 index on ``content``.
  Native FTS also scans rows written since the index was last updated, so a
  row is findable by text as soon as :meth:`LanceRecall.upsert` returns. That
  scan costs ~4-5 us per unindexed row (5k rows: +20 ms), so the index is
  refreshed (:meth:`LanceRecall.optimize`) every ``max_unindexed_rows`` rows.
* Vector search does **not** go through LanceDB. Its flat search took
  35-135 ms per query at 100k rows; an IVF_HNSW_SQ index took 25-40 s to build
  and answered in ~2 ms, but with recall@10 of only 0.45 (0.91 at 10k) on
  these vectors. Instead an in-process mirror (a float32 matrix plus the
  filter columns, loaded at open, updated on every upsert) gives the *exact*
  top-N with one matrix-vector product in 3-8 ms, and applies the privacy
  and filter masks for free. The price is RAM: ``rows * dim * 4`` bytes
  (~150 MB per 100k memories at 384-d) and ~1 s of loading per 100k at open.
* The mirror also keeps the small per-row fields (content, tags, ...), so an
  FTS query only asks LanceDB for ``id`` and ``_score`` (3.5-4 ms). Filters
  are applied to over-fetched FTS hits from the mirror; LanceDB's prefilter
  (~8 ms) is used only when filters are selective or the hits run short.
* Hybrid fuses the vector top-N and the BM25 top-N with reciprocal rank
  fusion (k=60); the FTS query runs in a worker thread while numpy scores the
  vectors. Result: hybrid p50 ~8 ms at 100k rows (target < 20 ms).

Writes are idempotent and monotonic: a row is written only when its ``seq``
is higher than the stored one (checked against the mirror, and again by the
``merge_insert`` condition). A forgotten memory becomes a tombstone (content
erased, zero vector, ``forgotten = true``) so its seq survives and a replayed
older event cannot bring it back; tombstones never appear in search results.
Unchanged content (a reinforcement, a re-tag) reuses the stored vector.

One :class:`LanceRecall` owns a directory (single writer); other processes
may open it and see the data as of their open. Compaction, index refresh and
version cleanup run every ``optimize_every`` writes or ``max_unindexed_rows``
rows, and on :meth:`optimize`; versions younger than ``keep_versions`` are
kept so readers of an older version do not break.
"""

from __future__ import annotations

import math
import re
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypedDict

import lancedb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import structlog
from lancedb.index import FTS

from swarm.auth import ADMIN
from swarm.embed import Embedder, normalize_rows
from swarm.errors import ConfigError, StoreError

__all__ = ["RRF_K", "LanceRecall", "RecallHit", "SearchMode"]

log = structlog.get_logger(__name__)

SearchMode = Literal["hybrid", "vector", "text"]
# requester, agent, kind, tags
_Filters = tuple[str | None, str | None, str | None, tuple[str, ...]]

#: Reciprocal rank fusion constant: fused score = sum over sides of 1 / (RRF_K + rank).
RRF_K = 60

_SCHEMA_VERSION = "1"
_META_EMBEDDER = b"swarm.embedder"
_META_DIM = b"swarm.dim"
_META_SCHEMA = b"swarm.recall_schema"
_WORD_RE = re.compile(r"\w")
#: The most full-text rows one search asks LanceDB for while completing tied scores.
_MAX_FTS_FETCH = 200_000
_MIRROR_COLUMNS = [
    "id",
    "content",
    "kind",
    "tags",
    "agent",
    "private",
    "importance",
    "seq",
    "forgotten",
    "vector",
]


class RecallHit(TypedDict):
    """One search result. ``score``: RRF (hybrid), cosine (vector) or BM25 (text)."""

    id: str
    content: str
    score: float
    agent: str
    kind: str
    tags: list[str]
    importance: float
    private: bool
    seq: int


def _schema(embedder: Embedder) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("content", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("agent", pa.string()),
            pa.field("private", pa.bool_()),
            pa.field("importance", pa.float64()),
            pa.field("seq", pa.int64()),
            pa.field("forgotten", pa.bool_()),
            pa.field("vector", pa.list_(pa.float32(), embedder.dim)),
        ],
        metadata={
            _META_EMBEDDER: embedder.name.encode(),
            _META_DIM: str(embedder.dim).encode(),
            _META_SCHEMA: _SCHEMA_VERSION.encode(),
        },
    )


def _settled(hits: Sequence[tuple[str, float]], n: int, raw: Sequence[tuple[str, float]]) -> bool:
    """Whether the top ``n`` of ``hits`` cannot change with more rows: its n-th score
    is above every score LanceDB left out (all of which are at most ``raw``'s lowest)."""
    return len(hits) >= n and hits[n - 1][1] > min(score for _, score in raw)


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def _store_errors(action: str) -> Iterator[None]:
    """Translate anything LanceDB raises into a StoreError naming the action."""
    try:
        yield
    except (StoreError, ConfigError):
        raise
    except Exception as exc:
        raise StoreError(f"recall store: {action} failed: {type(exc).__name__}: {exc}") from exc


class _Row:
    __slots__ = (
        "agent",
        "content",
        "forgotten",
        "id",
        "importance",
        "kind",
        "private",
        "seq",
        "tags",
    )

    def __init__(self, raw: Mapping[str, Any], index: int) -> None:
        try:
            rid = raw["id"]
            seq = raw["seq"]
        except KeyError as exc:
            raise StoreError(f"recall row {index} has no {exc.args[0]!r}") from None
        if not isinstance(rid, str) or not rid:
            raise StoreError(f"recall row {index} has an invalid id {rid!r}")
        if isinstance(seq, bool) or not isinstance(seq, int | np.integer) or seq < 0:
            raise StoreError(f"recall row {rid!r} has an invalid seq {seq!r}")
        self.id = rid
        self.seq = int(seq)
        self.forgotten = bool(raw.get("forgotten", False))
        content = raw.get("content", "")
        if not isinstance(content, str):
            raise StoreError(f"recall row {rid!r} has non-text content")
        self.content = "" if self.forgotten else content
        tags = raw.get("tags") or ()
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise StoreError(f"recall row {rid!r}: tags must be a list of strings")
        self.tags: tuple[str, ...] = () if self.forgotten else tuple(dict.fromkeys(tags))
        self.agent = str(raw.get("agent") or "")
        self.kind = str(raw.get("kind") or "")
        self.private = bool(raw.get("private", False))
        importance = float(raw.get("importance") or 0.0)
        self.importance = importance if math.isfinite(importance) else 0.0


class _Mirror:
    """In-process copy of the searchable state: vectors plus filter columns.

    Slots are positions in parallel arrays; a forgotten or replaced memory's
    slot is recycled. ``seqs`` remembers the seq of every id ever stored,
    tombstones included.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.size = 0  # high-water mark of used slots
        cap = 1024
        self.vecs: npt.NDArray[np.float32] = np.zeros((cap, dim), dtype=np.float32)
        self.live = np.zeros(cap, dtype=bool)
        self.private = np.zeros(cap, dtype=bool)
        self.agent = np.zeros(cap, dtype=np.int32)
        self.kind = np.zeros(cap, dtype=np.int32)
        self.ids: list[str] = []
        self.content: list[str] = []
        self.tags: list[tuple[str, ...]] = []
        self.importance: list[float] = []
        self.row_seq: list[int] = []
        self.agents: list[str] = []
        self.pos: dict[str, int] = {}
        self.seqs: dict[str, int] = {}
        self.free: list[int] = []
        self.codes: dict[str, int] = {}  # agent and kind strings -> small ints
        self.names: list[str] = []  # and back
        self.tag_pos: dict[str, set[int]] = {}
        self.max_seq = 0

    def code(self, value: str) -> int:
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.names)
            self.names.append(value)
        return found

    def _grow(self, need: int) -> None:
        cap = len(self.live)
        if need <= cap:
            return
        new_cap = max(need, int(cap * 1.5) + 1024)
        vecs = np.zeros((new_cap, self.dim), dtype=np.float32)
        vecs[: self.size] = self.vecs[: self.size]
        self.vecs = vecs
        for name in ("live", "private", "agent", "kind"):
            old = getattr(self, name)
            new = np.zeros(new_cap, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def _untag(self, p: int) -> None:
        for tag in self.tags[p]:
            holders = self.tag_pos.get(tag)
            if holders is not None:
                holders.discard(p)
                if not holders:
                    del self.tag_pos[tag]

    def _release(self, p: int) -> None:
        self._untag(p)
        del self.pos[self.ids[p]]
        self.live[p] = False
        self.ids[p] = ""
        self.content[p] = ""
        self.tags[p] = ()
        self.free.append(p)

    def apply(self, rows: Sequence[_Row], vectors: npt.NDArray[np.float32]) -> None:
        """Apply rows already written to the table; ``vectors`` aligns with live rows."""
        self._grow(self.size + len(rows))
        vi = 0
        for row in rows:
            self.seqs[row.id] = row.seq
            self.max_seq = max(self.max_seq, row.seq)
            p = self.pos.get(row.id)
            if row.forgotten:
                if p is not None:
                    self._release(p)
                continue
            if p is None:
                if self.free:
                    p = self.free.pop()
                else:
                    self._grow(self.size + 1)
                    p = self.size
                    self.size += 1
                    self.ids.append("")
                    self.content.append("")
                    self.tags.append(())
                    self.importance.append(0.0)
                    self.row_seq.append(0)
                    self.agents.append("")
                self.pos[row.id] = p
            else:
                self._untag(p)
            self.vecs[p] = vectors[vi]
            vi += 1
            self.live[p] = True
            self.private[p] = row.private
            self.agent[p] = self.code(row.agent)
            self.kind[p] = self.code(row.kind)
            self.ids[p] = row.id
            self.content[p] = row.content
            self.tags[p] = row.tags
            self.importance[p] = row.importance
            self.row_seq[p] = row.seq
            self.agents[p] = row.agent
            for tag in row.tags:
                self.tag_pos.setdefault(tag, set()).add(p)

    def load(self, cols: dict[str, list[Any]], vecs: npt.NDArray[np.float32]) -> None:
        """Fill an empty mirror from table columns (unique ids) in bulk."""
        forgotten = np.asarray([bool(f) for f in cols["forgotten"]], dtype=bool)
        live = np.flatnonzero(~forgotten).tolist()
        n = len(live)
        self._grow(n)
        self.size = n
        self.vecs[:n] = vecs[live]
        self.live[:n] = True
        pick = [cols[name] for name in ("id", "content", "kind", "tags", "agent", "private")]
        ids, content, kinds, tags, agents, private = ([c[i] for i in live] for c in pick)
        self.private[:n] = np.asarray([bool(p) for p in private], dtype=bool)
        self.agent[:n] = [self.code(a or "") for a in agents]
        self.kind[:n] = [self.code(k or "") for k in kinds]
        self.ids = ids
        self.content = [c or "" for c in content]
        self.tags = [tuple(t or ()) for t in tags]
        self.importance = [float(cols["importance"][i] or 0.0) for i in live]
        self.row_seq = [int(cols["seq"][i]) for i in live]
        self.agents = [a or "" for a in agents]
        self.pos = dict(zip(ids, range(n), strict=True))
        self.seqs = dict(zip(cols["id"], map(int, cols["seq"]), strict=True))
        self.max_seq = max(self.seqs.values(), default=0)
        for p, row_tags in enumerate(self.tags):
            for tag in row_tags:
                self.tag_pos.setdefault(tag, set()).add(p)

    def mask(
        self,
        requester: str | None,
        agent: str | None,
        kind: str | None,
        tags: Sequence[str],
    ) -> npt.NDArray[np.bool_]:
        n = self.size
        mask = self.live[:n].copy()
        req = self.codes.get(requester) if requester is not None else None
        if requester == ADMIN:
            pass  # the operator sees every memory
        elif req is None:
            mask &= ~self.private[:n]
        else:
            mask &= ~self.private[:n] | (self.agent[:n] == req)
        if agent is not None:
            code = self.codes.get(agent)
            if code is None:
                return np.zeros(n, dtype=bool)
            mask &= self.agent[:n] == code
        if kind is not None:
            code = self.codes.get(kind)
            if code is None:
                return np.zeros(n, dtype=bool)
            mask &= self.kind[:n] == code
        if tags:
            holder_sets = [self.tag_pos.get(tag) for tag in dict.fromkeys(tags)]
            if any(not s for s in holder_sets):
                return np.zeros(n, dtype=bool)
            sets = sorted((s for s in holder_sets if s), key=len)
            common = set(sets[0]).intersection(*sets[1:])
            tag_mask = np.zeros(n, dtype=bool)
            if common:
                tag_mask[np.fromiter(common, dtype=np.int64, count=len(common))] = True
            mask &= tag_mask
        return mask

    def hit(self, p: int, score: float) -> RecallHit:
        return RecallHit(
            id=self.ids[p],
            content=self.content[p],
            score=score,
            agent=self.agents[p],
            kind=self.names[int(self.kind[p])],
            tags=list(self.tags[p]),
            importance=self.importance[p],
            private=bool(self.private[p]),
            seq=self.row_seq[p],
        )


class LanceRecall:
    """Recall store over a LanceDB directory (see the module docstring for the design).

    ``optimize_every``: run :meth:`optimize` after this many table writes (0 = never
    automatically). ``max_unindexed_rows``: also optimize once this many rows were
    written since the last optimize. ``keep_versions``: table versions younger than
    this survive cleanup, so readers on an older version keep working.
    """

    def __init__(
        self,
        path: str | Path,
        embedder: Embedder,
        table: str = "memories",
        *,
        optimize_every: int = 50,
        max_unindexed_rows: int = 5_000,
        keep_versions: timedelta = timedelta(minutes=10),
        candidates: int = 50,
    ) -> None:
        if optimize_every < 0 or max_unindexed_rows < 1 or candidates < 1:
            raise ConfigError("optimize_every, max_unindexed_rows and candidates must be positive")
        self.path = Path(path)
        self.embedder = embedder
        self.table_name = table
        self.optimize_every = optimize_every
        self.max_unindexed_rows = max_unindexed_rows
        self.keep_versions = keep_versions
        self.candidates = candidates
        #: Below this fraction of visible rows, FTS is prefiltered in LanceDB
        #: instead of post-filtered from an over-fetched, unfiltered result.
        self.prefilter_below = 0.25
        #: Run the FTS side of a hybrid query in a worker thread, overlapping numpy.
        self.parallel_hybrid = True
        self._dim = int(embedder.dim)
        self._lock = threading.RLock()  # guards the mirror
        self._write_lock = threading.Lock()  # serialises upsert / optimize / close
        self._writes_since_optimize = 0
        self._rows_since_optimize = 0
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._mirror = _Mirror(self._dim)
        with _store_errors(f"opening {self.path}"):
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(str(self.path))
            try:
                self._table = self._db.open_table(table)
            except (ValueError, FileNotFoundError):
                self._table = self._db.create_table(table, schema=_schema(embedder))
            self._check_schema()
            self._ensure_fts_index()
            self._load()

    # ------------------------------------------------------------------ open

    def _check_schema(self) -> None:
        schema = self._table.schema
        meta = schema.metadata or {}
        stored = meta.get(_META_EMBEDDER, b"").decode()
        if stored != self.embedder.name:
            raise ConfigError(
                f"recall store {self.path} was built with embedder {stored or 'unknown'!r}, "
                f"not {self.embedder.name!r}; rebuild the recall projection "
                "(delete the directory and replay the log) to change embedder"
            )
        missing = [c for c in _MIRROR_COLUMNS if c not in schema.names]
        vec_type = schema.field("vector").type if "vector" in schema.names else None
        if missing or getattr(vec_type, "list_size", None) != self._dim:
            raise StoreError(
                f"recall store {self.path} has an incompatible schema "
                f"(missing {missing}, vector {vec_type}); rebuild the recall projection"
            )

    def _ensure_fts_index(self) -> None:
        if not any(ix.index_type == "FTS" for ix in self._table.list_indices()):
            self._table.create_index(
                "content", config=FTS(with_position=False), replace=True, name="content_fts"
            )

    def _load(self) -> None:
        data = self._table.to_arrow()
        n = data.num_rows
        if n == 0:
            return
        cols = {name: data.column(name).to_pylist() for name in _MIRROR_COLUMNS[:-1]}
        flat = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vecs = np.asarray(flat, dtype=np.float32).reshape(n, self._dim)
        ids: list[str] = cols["id"]
        if len(set(ids)) != n:  # should never happen; if it does, the newest row wins
            newest: dict[str, int] = {}
            for i in sorted(range(n), key=cols["seq"].__getitem__):
                newest[ids[i]] = i
            keep = sorted(newest.values())
            cols = {name: [values[i] for i in keep] for name, values in cols.items()}
            vecs = vecs[keep]
        self._mirror.load(cols, vecs)

    # ------------------------------------------------------------------ writes

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store the current state of memories; stale (lower or equal seq) rows are skipped."""
        self._check_open()
        latest: dict[str, _Row] = {}
        for i, raw in enumerate(rows):
            row = _Row(raw, i)
            prev = latest.get(row.id)
            if prev is None or row.seq > prev.seq:
                latest[row.id] = row
        if not latest:
            return
        # One writer at a time; searches keep running on the mirror meanwhile (only
        # the final mirror update takes the read lock) and on LanceDB's snapshots.
        with self._write_lock:
            self._check_open()
            seqs = self._mirror.seqs
            fresh = [r for r in latest.values() if r.seq > seqs.get(r.id, -1)]
            if not fresh:
                return
            live = [r for r in fresh if not r.forgotten]
            vectors = self._vectors(live)
            data = self._arrow(fresh, live, vectors)
            with _store_errors(f"writing {len(fresh)} rows to {self.table_name}"):
                if all(r.id not in seqs for r in fresh):
                    self._table.add(data)
                else:
                    (
                        self._table.merge_insert("id")
                        .when_matched_update_all(where="target.seq < source.seq")
                        .when_not_matched_insert_all()
                        .execute(data)
                    )
            with self._lock:
                self._mirror.apply(fresh, vectors)
            self._writes_since_optimize += 1
            self._rows_since_optimize += len(fresh)
            if (
                self.optimize_every and self._writes_since_optimize >= self.optimize_every
            ) or self._rows_since_optimize >= self.max_unindexed_rows:
                try:
                    self._optimize_locked()
                except StoreError as exc:
                    # The rows are stored; maintenance is retried after the next write.
                    log.warning("recall_optimize_failed", path=str(self.path), error=str(exc))

    def _vectors(self, live: list[_Row]) -> npt.NDArray[np.float32]:
        """Vectors for ``live`` rows: reused when the content is unchanged (a
        reinforcement or re-tag), otherwise embedded in one call."""
        m = self._mirror
        vectors = np.zeros((len(live), self._dim), dtype=np.float32)
        todo: list[int] = []
        for i, r in enumerate(live):
            p = m.pos.get(r.id)
            if p is not None and m.content[p] == r.content:
                vectors[i] = m.vecs[p]
            else:
                todo.append(i)
        if todo:
            vectors[todo] = self._embed([live[i].content for i in todo])
        return vectors

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        try:
            raw = self.embedder.embed(texts)
        except (StoreError, ConfigError):
            raise
        except Exception as exc:
            raise StoreError(f"embedder {self.embedder.name} failed: {exc}") from exc
        vectors = normalize_rows(raw)
        if vectors.shape != (len(texts), self._dim):
            raise StoreError(
                f"embedder {self.embedder.name} returned shape {vectors.shape}, "
                f"expected ({len(texts)}, {self._dim})"
            )
        if not np.isfinite(vectors).all():
            raise StoreError(f"embedder {self.embedder.name} returned non-finite values")
        return vectors

    def _arrow(
        self, fresh: list[_Row], live: list[_Row], vectors: npt.NDArray[np.float32]
    ) -> pa.Table:
        all_vecs = np.zeros((len(fresh), self._dim), dtype=np.float32)
        live_idx = [i for i, r in enumerate(fresh) if not r.forgotten]
        if live_idx:
            all_vecs[live_idx] = vectors
        return pa.table(
            {
                "id": [r.id for r in fresh],
                "content": [r.content for r in fresh],
                "kind": [r.kind for r in fresh],
                "tags": [list(r.tags) for r in fresh],
                "agent": [r.agent for r in fresh],
                "private": [r.private for r in fresh],
                "importance": [r.importance for r in fresh],
                "seq": [r.seq for r in fresh],
                "forgotten": [r.forgotten for r in fresh],
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(all_vecs.reshape(-1), type=pa.float32()), self._dim
                ),
            },
            schema=self._table.schema,
        )

    # ------------------------------------------------------------------ reads

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        requester: str | None = None,
        agent: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] = (),
        mode: SearchMode = "hybrid",
    ) -> list[RecallHit]:
        """Top ``k`` memories for ``query`` visible to ``requester``, best first.

        Private memories are returned only to their author (``requester ==
        agent``) and to the operator (``_admin``); with no requester, never.
        ``agent``, ``kind`` and ``tags`` (all must be present) narrow the result.
        """
        self._check_open()
        if mode not in ("hybrid", "vector", "text"):
            raise ConfigError(f"unknown search mode {mode!r}: use hybrid, vector or text")
        if isinstance(tags, str):
            tags = (tags,)
        if k <= 0 or not query or not _WORD_RE.search(query):
            return []
        filters = (requester, agent, kind, tuple(tags))
        ranked = self._ranked(
            query, mode, max(self.candidates, k) if mode == "hybrid" else k, filters
        )
        with self._lock:
            m = self._mirror
            out: list[RecallHit] = []
            for rid, score in ranked:
                # The mirror may have changed since scoring: re-check the current row.
                p = m.pos.get(rid)
                if p is not None and self._still_visible(p, filters):
                    out.append(m.hit(p, float(score)))
                    if len(out) == k:
                        break
            return out

    def _ranked(
        self, query: str, mode: SearchMode, n_cand: int, filters: _Filters
    ) -> list[tuple[str, float]]:
        """(id, score) pairs, best first, for the visible rows."""
        qvec = self._embed([query])[0] if mode != "text" else None
        with self._lock:
            mask = self._mirror.mask(*filters)
            visible = int(mask.sum())
            total = int(self._mirror.live[: self._mirror.size].sum())
        if visible == 0:
            return []
        selective = visible < self.prefilter_below * total
        if mode == "text":
            return self._text_hits(query, n_cand, mask, filters, selective)
        # BM25 runs in LanceDB (Rust, GIL released) while numpy scores the vectors.
        text_job: Future[list[tuple[str, float]]] | None = None
        if mode == "hybrid" and self.parallel_hybrid:
            text_job = self._executor().submit(
                self._text_hits, query, n_cand, mask, filters, selective
            )
        vec_hits: list[tuple[str, float]] = []
        if qvec is not None and qvec.any():
            with self._lock:
                vec_hits = self._vector_hits(qvec, n_cand, mask)
        if mode == "vector":
            return vec_hits
        text_hits = (
            text_job.result()
            if text_job is not None
            else self._text_hits(query, n_cand, mask, filters, selective)
        )
        fused: dict[str, float] = {}
        for hits in (vec_hits, text_hits):
            for rank, (rid, _) in enumerate(hits, start=1):
                fused[rid] = fused.get(rid, 0.0) + 1.0 / (RRF_K + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))

    def _still_visible(self, p: int, filters: _Filters) -> bool:
        requester, agent, kind, tags = filters
        m = self._mirror
        if m.private[p] and requester not in (m.agents[p], ADMIN):
            return False
        if agent is not None and m.agents[p] != agent:
            return False
        if kind is not None and m.codes.get(kind) != int(m.kind[p]):
            return False
        return all(t in m.tags[p] for t in tags)

    def _vector_hits(
        self, qvec: npt.NDArray[np.float32], n: int, mask: npt.NDArray[np.bool_]
    ) -> list[tuple[str, float]]:
        m = self._mirror
        size = min(m.size, len(mask))
        scores = m.vecs[:size] @ qvec
        scores[~mask[:size]] = -np.inf
        n = min(n, size)
        if n < size:
            # Every row scoring at least the n-th best, ties included, then the first n
            # by (score, id): the same hits whatever order the rows are held in.
            kth = np.partition(scores, size - n)[size - n]
            top = np.flatnonzero(scores >= max(kth, np.float32(0.0)))
        else:
            top = np.arange(size)
        top = top[scores[top] > 0.0]
        hits = [(m.ids[p], float(scores[p])) for p in top.tolist()]
        hits.sort(key=lambda h: (-h[1], h[0]))  # ties broken by id: stable results
        return hits[:n]

    def _text_hits(
        self,
        query: str,
        n: int,
        mask: npt.NDArray[np.bool_],
        filters: _Filters,
        selective: bool,
    ) -> list[tuple[str, float]]:
        """BM25 top-``n`` visible hits as (id, score), best first, ties broken by id."""
        if not selective:
            fetch = max(4 * n, 200)
            raw = self._fts(query, fetch, None)
            hits = self._visible(raw, mask)
            if len(raw) < fetch or (len(hits) >= n and _settled(hits, n, raw)):
                return hits[:n]
            if len(hits) >= n:  # enough, but ties straddle LanceDB's limit: ask for more
                return self._complete_text_hits(query, n, mask, None, 4 * fetch)
        return self._complete_text_hits(query, n, mask, self._where(*filters), n)

    def _complete_text_hits(
        self, query: str, n: int, mask: npt.NDArray[np.bool_], where: str | None, limit: int
    ) -> list[tuple[str, float]]:
        """LanceDB returns an arbitrary subset of the rows tied at its limit (a
        different one from call to call), so the limit grows until the n-th hit
        scores above the lowest score returned: then every row that could be in the
        top n is here, and (score, id) orders them the same way every time."""
        while True:
            raw = self._fts(query, limit, where)
            hits = self._visible(raw, mask)
            if len(raw) < limit or _settled(hits, n, raw) or limit >= _MAX_FTS_FETCH:
                return hits[:n]
            limit *= 4

    def _visible(
        self, raw: list[tuple[str, float]], mask: npt.NDArray[np.bool_]
    ) -> list[tuple[str, float]]:
        pos = self._mirror.pos
        out: list[tuple[str, float]] = []
        for rid, score in raw:
            p = pos.get(rid)
            if p is not None and p < len(mask) and mask[p]:
                out.append((rid, score))
        out.sort(key=lambda h: (-h[1], h[0]))  # ties broken by id: stable results
        return out

    def _fts(self, query: str, limit: int, where: str | None) -> list[tuple[str, float]]:
        with _store_errors("full-text search"):
            q = self._table.search(query, query_type="fts", fts_columns="content")
            if where is not None:
                q = q.where(where, prefilter=True)
            result = q.select(["id", "_score"]).limit(limit).to_arrow()
        return list(
            zip(result.column("id").to_pylist(), result.column("_score").to_pylist(), strict=True)
        )

    @staticmethod
    def _where(
        requester: str | None, agent: str | None, kind: str | None, tags: Sequence[str]
    ) -> str:
        clauses = ["forgotten = false"]
        if requester is None:
            clauses.append("private = false")
        elif requester != ADMIN:
            clauses.append(f"(private = false OR agent = {_sql(requester)})")
        if agent is not None:
            clauses.append(f"agent = {_sql(agent)}")
        if kind is not None:
            clauses.append(f"kind = {_sql(kind)}")
        if tags:
            clauses.append(f"array_has_all(tags, [{', '.join(_sql(t) for t in tags)}])")
        return " AND ".join(clauses)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recall-fts")
        return self._pool

    def count(self) -> int:
        """Number of memories stored (forgotten ones excluded)."""
        self._check_open()
        with self._lock:
            return len(self._mirror.pos)

    def max_seq(self) -> int:
        """Highest log sequence stored (tombstones included); 0 when empty."""
        self._check_open()
        with self._lock:
            return self._mirror.max_seq

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> None:
        """Compact fragments, fold new rows into the FTS index, drop old versions."""
        self._check_open()
        with self._write_lock:
            self._optimize_locked()

    def _optimize_locked(self) -> None:
        with _store_errors(f"optimizing {self.table_name}"), warnings.catch_warnings():
            # keep_versions=0 is the caller's explicit choice; LanceDB warns about it.
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            self._ensure_fts_index()
            self._table.optimize(cleanup_older_than=self.keep_versions)
        self._writes_since_optimize = 0
        self._rows_since_optimize = 0

    def scrub(self, ids: Sequence[str]) -> int:
        """Remove these memories' rows so that no file under the directory holds them.

        A LanceDB delete only marks rows deleted (their text stays in the data and
        index files until a rewrite), so erasure rewrites the table without them,
        rebuilds the full-text index and drops every older version and unreferenced
        file at once. Returns the rows removed. O(table): meant for erasures.
        """
        self._check_open()
        gone = set(ids)
        with self._write_lock, _store_errors(f"scrubbing {self.table_name}"):
            self._check_open()
            data = self._table.to_arrow()
            keep = pc.invert(pc.is_in(data.column("id"), value_set=pa.array(sorted(gone))))
            kept = data.filter(keep)
            removed = int(data.num_rows - kept.num_rows)
            self._table = self._db.create_table(self.table_name, kept, mode="overwrite")
            self._table.create_index(
                "content", config=FTS(with_position=False), replace=True, name="content_fts"
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
                self._table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
            with self._lock:
                self._mirror = _Mirror(self._dim)
                self._load()
            self._writes_since_optimize = self._rows_since_optimize = 0
        return removed

    def close(self) -> None:
        """Release the table and worker thread; the object is unusable afterwards."""
        with self._write_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self._mirror = _Mirror(self._dim)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"recall store {self.path} is closed")

    def __enter__(self) -> LanceRecall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LanceRecall({str(self.path)!r}, embedder={self.embedder.name!r})"
