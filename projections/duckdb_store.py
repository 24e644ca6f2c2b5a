"""The DuckDB projection: current state, history, audit trail and CRDT snapshots.

The projector folds the JetStream log into this store one *batch* at a time.
Every batch is applied in ONE transaction together with its checkpoint, so a
crash can never leave half a batch or a checkpoint that disagrees with the rows.

Writes never go row by row: each batch becomes one Arrow table per target table
(built with an explicit schema), registered on the writer cursor and inserted
with a single ``INSERT ... SELECT`` per table. Row-wise ``executemany`` upserts
are three orders of magnitude slower (see ``bench/bench_duckdb.py``).

Threading: one DuckDB connection per store. ``apply`` (one worker thread) runs on
a dedicated writer cursor under a lock; every read opens its own short-lived
cursor (DuckDB cursors are separate connections to the same database), so
readers see committed snapshots only: either before or after a whole batch.

Replay is always safe: a batch whose ``last_seq`` is not beyond its checkpoint is
skipped whole; events at or below the checkpoint (or the highest stored seq), or
with a stored ``event_id``, are ignored; versions are insert-if-absent; memory
and CRDT rows are only replaced by a row whose ``seq`` is not older.

Timestamps are read back as ISO-8601 strings in UTC. They are selected as epoch
microseconds and converted in Python, so no time-zone package (pytz) and no
session ``TimeZone`` setting is involved.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from swarm.errors import StoreError
from swarm.timeline import memory_as_of

__all__ = ["SCHEMA_VERSION", "DuckStore", "ProjectionBatch"]

SCHEMA_VERSION: Final = 2  # 2: event_records (the log's stored bytes, for audits)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TS: Final = pa.timestamp("us", tz="UTC")
_STR: Final = pa.string()
_STRS: Final = pa.list_(pa.string())

# Arrow schemas, in table column order. "JSON" columns travel as strings and are
# cast (and validated) by DuckDB on insert.
_SCHEMAS: Final[dict[str, pa.Schema]] = {
    "events": pa.schema(
        [
            ("seq", pa.int64()),
            ("event_id", _STR),
            ("type", _STR),
            ("agent", _STR),
            ("instance", _STR),
            ("memory_id", _STR),
            ("at", _TS),
            ("accepted_at", _TS),
            ("law_set", _STR),
            ("flags", _STR),
            ("payload", _STR),
            ("trace_id", _STR),
        ]
    ),
    "event_records": pa.schema([("seq", pa.int64()), ("record", pa.binary())]),
    "memories": pa.schema(
        [
            ("id", _STR),
            ("content", _STR),
            ("kind", _STR),
            ("tags", _STRS),
            ("importance", pa.float64()),
            ("recall_count", pa.int64()),
            ("agent", _STR),
            ("instance", _STR),
            ("private", pa.bool_()),
            ("forgotten", pa.bool_()),
            ("forgotten_reason", _STR),
            ("created_at", _TS),
            ("updated_at", _TS),
            ("updated_by", _STR),
            ("seq", pa.int64()),
            ("version", pa.int32()),
        ]
    ),
    "memory_versions": pa.schema(
        [
            ("memory_id", _STR),
            ("seq", pa.int64()),
            ("event_id", _STR),
            ("type", _STR),
            ("agent", _STR),
            ("instance", _STR),
            ("at", _TS),
            ("state", _STR),
        ]
    ),
    "crdt_docs": pa.schema(
        [
            ("memory_id", _STR),
            ("doc", pa.binary()),
            ("heads", _STRS),
            ("seq", pa.int64()),
        ]
    ),
    "rejections": pa.schema(
        [
            ("seq", pa.int64()),
            ("event_id", _STR),
            ("type", _STR),
            ("agent", _STR),
            ("instance", _STR),
            ("memory_id", _STR),
            ("check", _STR),
            ("kind", _STR),
            ("reason", _STR),
            ("where", _STR),
            ("at", _TS),
        ]
    ),
}

_JSON_COLS: Final[dict[str, tuple[str, ...]]] = {
    "events": ("flags", "payload"),
    "memory_versions": ("state",),
}

# Ordering key of every digested table, and the columns the digest leaves out.
_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "events": ("seq",),
    "event_records": ("seq",),
    "memories": ("id",),
    "memory_versions": ("memory_id", "seq"),
    "crdt_docs": ("memory_id",),
    "rejections": ("seq",),
    "checkpoints": ("name",),
}

_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
        "key" VARCHAR PRIMARY KEY, "value" VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS events (
        "seq" BIGINT PRIMARY KEY, "event_id" VARCHAR UNIQUE NOT NULL, "type" VARCHAR,
        "agent" VARCHAR, "instance" VARCHAR, "memory_id" VARCHAR, "at" TIMESTAMPTZ,
        "accepted_at" TIMESTAMPTZ, "law_set" VARCHAR, "flags" JSON, "payload" JSON,
        "trace_id" VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS event_records (
        "seq" BIGINT PRIMARY KEY, "record" BLOB)""",
    """CREATE TABLE IF NOT EXISTS memories (
        "id" VARCHAR PRIMARY KEY, "content" VARCHAR, "kind" VARCHAR, "tags" VARCHAR[],
        "importance" DOUBLE, "recall_count" BIGINT, "agent" VARCHAR, "instance" VARCHAR,
        "private" BOOLEAN, "forgotten" BOOLEAN, "forgotten_reason" VARCHAR,
        "created_at" TIMESTAMPTZ, "updated_at" TIMESTAMPTZ, "updated_by" VARCHAR,
        "seq" BIGINT, "version" INTEGER)""",
    """CREATE TABLE IF NOT EXISTS memory_versions (
        "memory_id" VARCHAR, "seq" BIGINT, "event_id" VARCHAR, "type" VARCHAR,
        "agent" VARCHAR, "instance" VARCHAR, "at" TIMESTAMPTZ, "state" JSON,
        PRIMARY KEY ("memory_id", "seq"))""",
    """CREATE TABLE IF NOT EXISTS crdt_docs (
        "memory_id" VARCHAR PRIMARY KEY, "doc" BLOB, "heads" VARCHAR[], "seq" BIGINT)""",
    """CREATE TABLE IF NOT EXISTS rejections (
        "seq" BIGINT PRIMARY KEY, "event_id" VARCHAR, "type" VARCHAR, "agent" VARCHAR,
        "instance" VARCHAR, "memory_id" VARCHAR, "check" VARCHAR, "kind" VARCHAR,
        "reason" VARCHAR, "where" VARCHAR, "at" TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        "name" VARCHAR PRIMARY KEY, "seq" BIGINT, "updated_at" TIMESTAMPTZ)""",
)


@dataclass
class ProjectionBatch:
    """Everything one projector batch writes, plus the checkpoint it reaches."""

    last_seq: int
    """Stream sequence of the last message in the batch (the checkpoint to record)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Rows for ``events``; flags/payload as JSON strings, timestamps tz-aware."""
    memories: list[dict[str, Any]] = field(default_factory=list)
    """Full current rows for ``memories`` (upsert by id)."""
    versions: list[dict[str, Any]] = field(default_factory=list)
    """Rows for ``memory_versions`` (state as JSON string)."""
    docs: list[dict[str, Any]] = field(default_factory=list)
    """Rows for ``crdt_docs`` (upsert by memory_id)."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """Rows for ``event_records``: each log entry's stored bytes (``seq``, ``record``)."""
    checkpoint: str = "projector"


# --------------------------------------------------------------------------- helpers


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cols(table: str) -> list[str]:
    return list(_SCHEMAS[table].names)


def _collist(table: str) -> str:
    return ", ".join(_q(c) for c in _cols(table))


def _ts_cols(table: str) -> set[str]:
    return {f.name for f in _SCHEMAS[table] if pa.types.is_timestamp(f.type)}


def _select_list(table: str) -> str:
    """Column list for reads: timestamps as epoch microseconds (no pytz needed)."""
    ts = _ts_cols(table)
    return ", ".join(f"epoch_us({_q(c)}) AS {_q(c)}" if c in ts else _q(c) for c in _cols(table))


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _as_json_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _as_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _normalise(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accept dicts for JSON columns and ISO strings for timestamps (copying only if needed)."""
    json_cols = _JSON_COLS.get(table, ())
    ts_cols = _ts_cols(table)
    out: list[dict[str, Any]] | None = None
    for i, row in enumerate(rows):
        fixed: dict[str, Any] | None = None
        for c in json_cols:
            v = row.get(c)
            if v is not None and not isinstance(v, str):
                fixed = fixed if fixed is not None else dict(row)
                fixed[c] = _as_json_text(v)
        for c in ts_cols:
            v = row.get(c)
            if isinstance(v, str):
                fixed = fixed if fixed is not None else dict(row)
                fixed[c] = _as_timestamp(v)
        if fixed is not None:
            if out is None:
                out = list(rows)
            out[i] = fixed
    return rows if out is None else out


def _latest_per_key(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One row per key (the highest seq; the later one on ties), preserving first-seen order.

    DuckDB does not define which row wins when one upsert statement carries the
    same key twice, so the batch is de-duplicated here.
    """
    best: dict[Any, dict[str, Any]] = {}
    dup = False
    for row in rows:
        k = row.get(key)
        prev = best.get(k)
        if prev is None:
            best[k] = row
            continue
        dup = True
        if (row.get("seq") or 0) >= (prev.get("seq") or 0):
            best[k] = row
    return list(best.values()) if dup else rows


def _arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(_normalise(table, rows), schema=_SCHEMAS[table])


def _upsert_sql(table: str, key: str, source: str) -> str:
    """Insert-or-update by ``key``; an existing row is only replaced by a row not older."""
    cols = _collist(table)
    sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in _cols(table) if c != key)
    t = _q(table)
    return (
        f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {source} "
        f"ON CONFLICT ({_q(key)}) DO UPDATE SET {sets} "
        f'WHERE excluded."seq" IS NULL OR {t}."seq" IS NULL OR excluded."seq" >= {t}."seq"'
    )


def _insert_new_sql(table: str, source: str, *, after: bool) -> str:
    """Insert-if-absent for a table with ONE unique key (``after``: only seq > checkpoint)."""
    cols = _collist(table)
    where = ' WHERE "seq" > $after' if after else ""
    return f"INSERT OR IGNORE INTO {_q(table)} ({cols}) SELECT {cols} FROM {source}{where}"


def _insert_events_sql(source: str) -> str:
    """Append new events.

    ``INSERT OR IGNORE`` on a table with two unique keys (seq, event_id) costs time
    proportional to the table (measured: 15 ms per 1000-row batch on an empty
    table, 150 ms at 40k rows). Events are appended in stream order, so a row is
    new exactly when its seq is beyond both the checkpoint and the highest stored
    seq (a cheap max over one column); a re-published event_id under a new seq is
    then skipped by the single-key conflict clause, which stays flat.
    """
    cols = _collist("events")
    return (
        f"INSERT INTO events ({cols}) SELECT {cols} FROM {source} "
        'WHERE "seq" > greatest($after, (SELECT coalesce(max("seq"), 0) FROM events)) '
        'ON CONFLICT ("event_id") DO NOTHING'
    )


def _unique_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats of a seq or an event_id inside one batch (the first one stays)."""
    seqs: set[Any] = set()
    ids: set[Any] = set()
    out: list[dict[str, Any]] = []
    for row in rows:
        seq, eid = row.get("seq"), row.get("event_id")
        if seq in seqs or (eid is not None and eid in ids):
            continue
        seqs.add(seq)
        ids.add(eid)
        out.append(row)
    return out if len(out) != len(rows) else rows


_SET_CHECKPOINT_MAX: Final = (
    'INSERT INTO checkpoints ("name", "seq", "updated_at") VALUES ($name, $seq, now()) '
    'ON CONFLICT ("name") DO UPDATE SET "seq" = greatest(checkpoints."seq", excluded."seq"), '
    '"updated_at" = excluded."updated_at"'
)
_SET_CHECKPOINT_EXACT: Final = (
    'INSERT INTO checkpoints ("name", "seq", "updated_at") VALUES ($name, $seq, now()) '
    'ON CONFLICT ("name") DO UPDATE SET "seq" = excluded."seq", '
    '"updated_at" = excluded."updated_at"'
)
_GET_CHECKPOINT: Final = 'SELECT "seq" FROM checkpoints WHERE "name" = ?'


def _one(cur: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> tuple[Any, ...] | None:
    """First row of a query. Fetches everything: DuckDB 2 refuses further work on a
    connection whose last result was not read to the end."""
    rows = cur.execute(sql, params).fetchall()
    return rows[0] if rows else None


# --------------------------------------------------------------------------- the store


class DuckStore:
    """The DuckDB file behind the projection (see the module docstring)."""

    def __init__(self, path: str | Path, *, read_only: bool = False, threads: int = 1) -> None:
        self.path = Path(path)
        self.read_only = read_only
        #: Opens sealed content in the rows it returns (a keystore's ``reveal_row``);
        #: None: content as stored. The tables always hold it as the log does: sealed.
        self.reveal: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._write_lock = threading.Lock()
        self._conn_lock = threading.Lock()  # guards cursor creation and close
        self._closed = False
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory for {self.path}: {exc}") from exc
        elif not self.path.exists():
            raise StoreError(f"DuckDB projection {self.path} does not exist")
        try:
            # One thread: batches are small, and on a small machine DuckDB's worker
            # threads only contend with nats-server and the gate (measured: -15% per batch).
            self._conn = duckdb.connect(
                str(self.path), read_only=read_only, config={"threads": threads}
            )
        except duckdb.Error as exc:
            raise self._open_error(exc) from exc
        try:
            self._writer: duckdb.DuckDBPyConnection | None = (
                None if read_only else self._conn.cursor()
            )
            self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def _open_error(self, exc: duckdb.Error) -> StoreError:
        text = str(exc)
        if "lock" in text.lower():
            return StoreError(
                f"DuckDB projection {self.path} is in use by another process "
                f"(is `swarm up` running?): {text}"
            )
        return StoreError(f"cannot open DuckDB projection {self.path}: {text}")

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"DuckDB {what} failed on {self.path}: {exc}")

    def _init_schema(self) -> None:
        if self._writer is not None:
            cur = self._writer
            try:
                cur.execute("BEGIN TRANSACTION")
                for ddl in _DDL:
                    cur.execute(ddl)
                cur.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
                )
                cur.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback(cur)
                raise self._error("schema creation", exc) from exc
        with self._reader("schema check") as cur:
            try:
                row = _one(cur, 'SELECT "value" FROM meta WHERE "key" = \'schema_version\'')
            except duckdb.CatalogException as exc:
                raise StoreError(
                    f"{self.path} is not a Swarm Memory projection (no meta table)"
                ) from exc
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = None if row is None else row[0]
            raise StoreError(
                f"{self.path} has projection schema version {found}, "
                f"this build expects {SCHEMA_VERSION}; rebuild the projection"
            )

    def close(self) -> None:
        """Close the store (idempotent). Later calls raise StoreError."""
        with self._write_lock, self._conn_lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._writer is not None:
                    self._writer.close()
                self._conn.close()
            except duckdb.Error as exc:
                raise self._error("close", exc) from exc

    def __enter__(self) -> DuckStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "ro" if self.read_only else "rw"
        return f"DuckStore({str(self.path)!r}, {mode}{', closed' if self._closed else ''})"

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _reader(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one read; duckdb errors become StoreError."""
        with self._conn_lock:
            if self._closed:
                raise StoreError(f"DuckDB projection {self.path} is closed")
            try:
                cur = self._conn.cursor()
            except duckdb.Error as exc:
                raise self._error(what, exc) from exc
        try:
            yield cur
        except duckdb.Error as exc:
            raise self._error(what, exc) from exc
        finally:
            with suppress(duckdb.Error):
                cur.close()

    def _writer_cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise StoreError(f"DuckDB projection {self.path} is closed")
        if self._writer is None:
            raise StoreError(f"DuckDB projection {self.path} is open read-only")
        return self._writer

    @staticmethod
    def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
        # No transaction may be open (it failed at BEGIN); nothing else to undo then.
        with suppress(duckdb.Error):
            cur.execute("ROLLBACK")

    def _run_batch(
        self,
        what: str,
        checkpoint: str,
        last_seq: int,
        tables: dict[str, pa.Table],
        statements: list[str],
    ) -> None:
        """Register ``tables``, run ``statements`` and move ``checkpoint``, in one transaction.

        Statements may use ``$after`` (the checkpoint before the batch). The whole
        batch is skipped when ``last_seq`` is not beyond the current checkpoint.
        """
        with self._write_lock:
            cur = self._writer_cursor()
            registered: list[str] = []
            try:
                cur.execute("BEGIN TRANSACTION")
                row = _one(cur, _GET_CHECKPOINT, [checkpoint])
                current = int(row[0]) if row is not None and row[0] is not None else 0
                if last_seq <= current:
                    cur.execute("ROLLBACK")
                    return
                for name, table in tables.items():
                    cur.register(name, table)
                    registered.append(name)
                for sql in statements:
                    params = {"after": current} if "$after" in sql else None
                    cur.execute(sql, params)
                cur.execute(_SET_CHECKPOINT_MAX, {"name": checkpoint, "seq": last_seq})
                cur.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback(cur)
                raise self._error(what, exc) from exc
            except BaseException:
                self._rollback(cur)  # never leave the writer inside a transaction
                raise
            finally:
                for name in registered:
                    with suppress(duckdb.Error):
                        cur.unregister(name)

    # ------------------------------------------------------------------ writes

    def apply(self, batch: ProjectionBatch) -> None:
        """Apply one projector batch atomically (see the module docstring for replay rules).

        On any error nothing of the batch is visible and StoreError is raised.
        """
        try:
            tables = {
                "_batch_events": _arrow("events", _unique_events(batch.events)),
                "_batch_memories": _arrow("memories", _latest_per_key(batch.memories, "id")),
                "_batch_versions": _arrow("memory_versions", batch.versions),
                "_batch_docs": _arrow("crdt_docs", _latest_per_key(batch.docs, "memory_id")),
                "_batch_records": _arrow("event_records", batch.records),
            }
        except (pa.ArrowException, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise StoreError(
                f"DuckDB apply failed on {self.path}: batch up to seq {batch.last_seq} "
                f"does not fit the projection schema: {exc}"
            ) from exc
        statements: list[str] = []
        if batch.events:
            statements.append(_insert_events_sql("_batch_events"))
        if batch.memories:
            statements.append(_upsert_sql("memories", "id", "_batch_memories"))
        if batch.versions:
            statements.append(_insert_new_sql("memory_versions", "_batch_versions", after=False))
        if batch.docs:
            statements.append(_upsert_sql("crdt_docs", "memory_id", "_batch_docs"))
        if batch.records:
            statements.append(_insert_new_sql("event_records", "_batch_records", after=True))
        used = {name for name in tables if any(name in sql for sql in statements)}
        self._run_batch(
            "apply",
            batch.checkpoint,
            batch.last_seq,
            {k: v for k, v in tables.items() if k in used},
            statements,
        )

    def apply_rejections(self, rows: list[dict[str, Any]], last_seq: int) -> None:
        """Record rejections (``seq``: REJECTED stream sequence); checkpoint "rejections"."""
        try:
            table = _arrow("rejections", rows)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise StoreError(
                f"DuckDB apply_rejections failed on {self.path}: rows up to seq {last_seq} "
                f"do not fit the projection schema: {exc}"
            ) from exc
        statements = (
            [_insert_new_sql("rejections", "_batch_rejections", after=True)] if rows else []
        )
        tables = {"_batch_rejections": table} if rows else {}
        self._run_batch("apply_rejections", "rejections", last_seq, tables, statements)

    def set_checkpoint(self, name: str, seq: int) -> None:
        """Set checkpoint ``name`` to exactly ``seq`` (may move back, e.g. to force a re-feed)."""
        with self._write_lock:
            cur = self._writer_cursor()
            try:
                cur.execute(_SET_CHECKPOINT_EXACT, {"name": name, "seq": seq})
            except duckdb.Error as exc:
                raise self._error("set_checkpoint", exc) from exc

    # ------------------------------------------------------------------ reads

    def checkpoint(self, name: str = "projector") -> int:
        """The recorded stream sequence for ``name``; 0 if none."""
        with self._reader("checkpoint") as cur:
            row = _one(cur, _GET_CHECKPOINT, [name])
        return int(row[0]) if row is not None and row[0] is not None else 0

    def load_docs(self, memory_ids: Sequence[str]) -> dict[str, bytes]:
        """CRDT snapshot bytes for the given memories (missing ids are simply absent)."""
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return {}
        with self._reader("load_docs") as cur:
            rows = cur.execute(
                'SELECT "memory_id", "doc" FROM crdt_docs WHERE "memory_id" IN (SELECT unnest(?))',
                [ids],
            ).fetchall()
        return {str(mid): bytes(doc) for mid, doc in rows if doc is not None}

    def load_docs_with_version(self, memory_ids: Sequence[str]) -> dict[str, tuple[bytes, int]]:
        """Like :meth:`load_docs`, each snapshot paired with its memory's ``version``.

        The version comes from the ``memories`` row of the same snapshot (0 if none).
        """
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return {}
        with self._reader("load_docs_with_version") as cur:
            rows = cur.execute(
                'SELECT d."memory_id", d."doc", coalesce(m."version", 0) FROM crdt_docs d '
                'LEFT JOIN memories m ON m."id" = d."memory_id" '
                'WHERE d."memory_id" IN (SELECT unnest(?))',
                [ids],
            ).fetchall()
        return {str(mid): (bytes(doc), int(v)) for mid, doc, v in rows if doc is not None}

    def _fetch(
        self, what: str, table: str, where: str, order: str, params: list[Any]
    ) -> list[dict[str, Any]]:
        cols = _cols(table)
        sql = f"SELECT {_select_list(table)} FROM {_q(table)} {where} {order}"
        with self._reader(what) as cur:
            rows = cur.execute(sql, params).fetchall()
        ts = _ts_cols(table)
        json_cols = _JSON_COLS.get(table, ())
        out: list[dict[str, Any]] = []
        for values in rows:
            rec = dict(zip(cols, values, strict=True))
            for c in ts:
                rec[c] = _iso(rec[c])
            for c in json_cols:
                if rec[c] is not None:
                    rec[c] = json.loads(rec[c])
            if "tags" in rec and rec["tags"] is None:
                rec["tags"] = []
            if self.reveal is not None:
                if table == "memories":
                    rec = self.reveal(rec)
                elif table == "memory_versions" and isinstance(rec.get("state"), dict):
                    rec["state"] = self.reveal(rec["state"])
            out.append(rec)
        return out

    def get_memory(self, memory_id: str) -> dict[str, Any] | None:
        """The current row of a memory (forgotten ones included), or None."""
        rows = self._fetch("get_memory", "memories", 'WHERE "id" = ?', "", [memory_id])
        return rows[0] if rows else None

    def memories_since(self, seq: int, limit: int = 10000) -> list[dict[str, Any]]:
        """Memory rows last changed after ``seq``, oldest change first."""
        return self._fetch(
            "memories_since",
            "memories",
            'WHERE "seq" > ?',
            'ORDER BY "seq", "id" LIMIT ?',
            [seq, limit],
        )

    def list_memories(
        self,
        agent: str | None,
        *,
        after_seq: int = 0,
        limit: int = 500,
        reader: str | None = None,
        forgotten: bool = False,
    ) -> list[dict[str, Any]]:
        """Memory rows of ``agent`` (None: everyone's) last changed after ``after_seq``,
        oldest change first; without those private to an agent other than ``reader``
        (None: leave out nothing), and without forgotten ones unless ``forgotten``."""
        return self._fetch(
            "list_memories",
            "memories",
            'WHERE "seq" > ? AND (? IS NULL OR "agent" = ?) '
            'AND (? OR NOT coalesce("forgotten", false)) '
            'AND (? IS NULL OR NOT coalesce("private", false) OR "agent" = ?)',
            'ORDER BY "seq", "id" LIMIT ?',
            [after_seq, agent, agent, forgotten, reader, reader, limit],
        )

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """Every recorded version of a memory, oldest first, ``state`` parsed back to a dict."""
        return self._fetch(
            "history", "memory_versions", 'WHERE "memory_id" = ?', 'ORDER BY "seq"', [memory_id]
        )

    # ------------------------------------------------------------------ as of a past seq

    def seq_at(self, when: datetime) -> int:
        """The last log sequence accepted at or before ``when`` (0: none; the checkpoint
        when every event applied was): the log's prefix up to the first later event."""
        us = (when - _EPOCH) // timedelta(microseconds=1)
        with self._reader("seq_at") as cur:
            row = _one(cur, 'SELECT min("seq") FROM events WHERE epoch_us("accepted_at") > ?', [us])
        return int(row[0]) - 1 if row is not None and row[0] is not None else self.checkpoint()

    def memory_as_of(self, memory_id: str, seq: int) -> dict[str, Any] | None:
        """The memory as :meth:`get_memory` showed it once ``seq`` was applied, or None."""
        versions = [v for v in self.history(memory_id) if v["seq"] <= seq]
        if not versions:
            return None
        with self._reader("memory_as_of") as cur:
            row = _one(
                cur,
                'SELECT count(*) FROM events WHERE "memory_id" = ? AND "seq" <= ? '
                "AND \"type\" LIKE 'memory.%'",
                [memory_id, seq],
            )
        return memory_as_of(versions, seq, applied=int(row[0]) if row else None)

    def memories_as_of(self, seq: int, chunk: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """Every memory's state once ``seq`` was applied, as recall rows (see
        ``reducers.recall_row``), in chunks ordered by (seq, id): the rows and order
        :meth:`memories_since` gives on a projection rebuilt up to ``seq``."""
        sql = (
            'SELECT "memory_id", "seq", "state" FROM ('
            'SELECT "memory_id", max("seq") AS "seq", arg_max("state", "seq") AS "state" '
            'FROM memory_versions WHERE "seq" <= ? GROUP BY "memory_id") '
            'ORDER BY "seq", "memory_id"'
        )
        with self._reader("memories_as_of") as cur:
            cur.execute(sql, [seq])
            while rows := cur.fetchmany(chunk):
                out = []
                for mid, row_seq, text in rows:
                    state = json.loads(text)
                    out.append(
                        {
                            "id": mid,
                            "content": state["content"],
                            "kind": state["kind"],
                            "tags": state.get("tags") or [],
                            "agent": state["agent"],
                            "private": state["private"],
                            "importance": state["importance"],
                            "seq": int(row_seq),
                            "forgotten": state.get("forgotten", False),
                        }
                    )
                yield [self.reveal(r) for r in out] if self.reveal is not None else out

    def memories_mentioning(self, name: str, chunk: int = 5000) -> list[str]:
        """The memories whose content, in any version, names ``name`` (whole words,
        any case, any spacing between them; on the opened text), in id order."""
        words = r"\s+".join(re.escape(w) for w in name.split())
        pattern = re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
        found: set[str] = set()
        with self._reader("memories_mentioning") as cur:
            cur.execute('SELECT "memory_id", "state" FROM memory_versions')
            while rows := cur.fetchmany(chunk):
                for mid, text in rows:
                    if mid in found:
                        continue
                    state = json.loads(text)
                    if self.reveal is not None:
                        state = self.reveal(state)
                    if pattern.search(str(state.get("content") or "")):
                        found.add(str(mid))
        return sorted(found)

    def audit_rows(
        self, *, agent: str | None, since_seq: int, since_time: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Who did what, when, under which laws: events in log order (no content)."""
        where = ['"seq" > ?']
        params: list[Any] = [since_seq]
        if agent is not None:
            where.append('"agent" = ?')
            params.append(agent)
        if since_time is not None:
            where.append('"accepted_at" >= ?::TIMESTAMPTZ')
            params.append(since_time)
        rows = self._fetch(
            "audit_rows",
            "events",
            "WHERE " + " AND ".join(where),
            'ORDER BY "seq" LIMIT ?',
            [*params, limit],
        )
        for row in rows:
            row.pop("payload", None)
        return rows

    def records_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """The log's stored bytes after ``seq``, in order (what an audit verifies)."""
        with self._reader("records_since") as cur:
            rows = cur.execute(
                'SELECT "seq", "record" FROM event_records WHERE "seq" > ? ORDER BY "seq" LIMIT ?',
                [seq, limit],
            ).fetchall()
        return [(int(s), bytes(r)) for s, r in rows]

    def events_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Events with a sequence after ``seq``, in order; flags/payload parsed from JSON."""
        return self._fetch(
            "events_since", "events", 'WHERE "seq" > ?', 'ORDER BY "seq" LIMIT ?', [seq, limit]
        )

    def rejections_since(
        self, seq: int = 0, limit: int = 100, agent: str | None = None
    ) -> list[dict[str, Any]]:
        """Rejections with a REJECTED-stream sequence after ``seq``, in order
        (``agent``: only that agent's)."""
        return self._fetch(
            "rejections_since",
            "rejections",
            'WHERE "seq" > ? AND (? IS NULL OR "agent" = ?)',
            'ORDER BY "seq" LIMIT ?',
            [seq, agent, agent, limit],
        )

    def tail(self, seq: int, limit: int, reader: str | None) -> list[dict[str, Any]]:
        """Memory events after ``seq``, in order, as metadata (no payload; ``flags`` as
        law ids), leaving out those on memories private to an agent other than
        ``reader`` (None: leave out nothing). System records are not included."""
        sql = (
            'SELECT e."seq", e."event_id", e."type", e."agent", e."instance", e."memory_id", '
            'epoch_us(e."at"), epoch_us(e."accepted_at"), e."law_set", e."flags" '
            'FROM events e LEFT JOIN memories m ON m."id" = e."memory_id" '
            'WHERE e."seq" > ? AND e."type" LIKE \'memory.%\' '
            'AND (? IS NULL OR NOT coalesce(m."private", false) '
            'OR m."agent" = ?) ORDER BY e."seq" LIMIT ?'
        )
        with self._reader("tail") as cur:
            rows = cur.execute(sql, [seq, reader, reader, limit]).fetchall()
        keys = ("seq", "event_id", "type", "agent", "instance", "memory_id")
        return [
            {
                **dict(zip(keys, row[:6], strict=True)),
                "at": _iso(row[6]),
                "accepted_at": _iso(row[7]),
                "law_set": row[8],
                "flags": [f["law"] for f in json.loads(row[9] or "[]")],
            }
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        """Row counts from one consistent snapshot."""
        with self._reader("counts") as cur:
            row = _one(
                cur,
                """SELECT
                    (SELECT count(*) FROM memories WHERE NOT coalesce("forgotten", false)),
                    (SELECT count(*) FROM memories WHERE coalesce("forgotten", false)),
                    (SELECT count(*) FROM events),
                    (SELECT count(*) FROM rejections),
                    (SELECT count(*) FROM events WHERE "type" = 'proposal.opened')
                    - (SELECT count(*) FROM events WHERE "type" = 'proposal.decided')""",
            )
        if row is None:  # pragma: no cover - an aggregate always returns one row
            raise StoreError(f"DuckDB counts returned nothing on {self.path}")
        memories, forgotten, events, rejected, awaiting = (int(v) for v in row)
        return {
            "memories": memories,
            "forgotten": forgotten,
            "events": events,
            "rejected": rejected,
            "pending_approvals": awaiting,
        }

    def ingest_counts(self) -> tuple[int, dict[str, int]]:
        """Memory events applied, and recorded refusals per law or built-in check (most
        frequent first)."""
        with self._reader("ingest_counts") as cur:
            accepted = _one(cur, "SELECT count(*) FROM events WHERE \"type\" LIKE 'memory.%'")
            refused = cur.execute(
                'SELECT "check", count(*) AS n FROM rejections GROUP BY 1 ORDER BY n DESC, 1'
            ).fetchall()
        return int(accepted[0]) if accepted else 0, {str(c): int(n) for c, n in refused}

    def table_digest(self) -> dict[str, str]:
        """Per table, an md5 over its rows in key order (checkpoints without ``updated_at``).

        Equal digests mean equal content regardless of how the rows were batched.
        All tables are read in one snapshot.
        """
        parts: list[str] = []
        for table, key in _KEYS.items():
            if table == "checkpoints":
                cols = ["name", "seq"]
                ts: set[str] = set()
            else:
                cols = _cols(table)
                ts = _ts_cols(table)
            fields = []
            for c in cols:
                if c in ts:
                    expr = f"epoch_us({_q(c)})"
                elif (table, c) in (("crdt_docs", "doc"), ("event_records", "record")):
                    expr = f"md5({_q(c)})"
                else:
                    expr = _q(c)
                fields.append(f"{_q(c)} := {expr}")
            order = ", ".join(_q(k) for k in key)
            parts.append(
                f"(SELECT md5(coalesce(string_agg("
                f"to_json(struct_pack({', '.join(fields)}))::VARCHAR, chr(10) ORDER BY {order}"
                f"), '')) FROM {_q(table)})"
            )
        with self._reader("table_digest") as cur:
            row = _one(cur, "SELECT " + ", ".join(parts))
        if row is None:  # pragma: no cover - an aggregate always returns one row
            raise StoreError(f"DuckDB table_digest returned nothing on {self.path}")
        return {table: str(value) for table, value in zip(_KEYS, row, strict=True)}
