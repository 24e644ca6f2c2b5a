"""Throughput of the DuckDB projection next to its floor and the row-wise trap.

    python bench/bench_duckdb.py [--rows 100000] [--batch 1000] [--small 2000] [--json]

Measured in one run, each into a fresh DuckDB file in a temporary directory:

* ``DuckStore.apply``: realistic projector batches; every event writes one row to
  each of events, memories (upsert), memory_versions and crdt_docs (upsert), plus
  the checkpoint, in one transaction per batch. Reported as events/s and rows/s.
* floor: bare ``INSERT INTO events SELECT * FROM arrow`` of the same event rows
  into one table (same keys), same batch size, autocommit; the Arrow build
  (``Table.from_pylist``) is timed on its own line.
* trap: ``executemany`` of ``INSERT OR REPLACE`` into memories for ``--small`` rows.
* reads: ``load_docs`` of one batch of ids and ``get_memory`` latency.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

try:
    from projections.duckdb_store import DuckStore, ProjectionBatch
except ModuleNotFoundError:  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from projections.duckdb_store import DuckStore, ProjectionBatch

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WORDS = [
    *("agent", "swarm", "memory", "fact", "decision", "note", "tool"),
    *("result", "plan", "error", "retry", "user", "log"),
]

EVENTS_DDL = """CREATE TABLE events (
    "seq" BIGINT PRIMARY KEY, "event_id" VARCHAR UNIQUE NOT NULL, "type" VARCHAR,
    "agent" VARCHAR, "instance" VARCHAR, "memory_id" VARCHAR, "at" TIMESTAMPTZ,
    "accepted_at" TIMESTAMPTZ, "law_set" VARCHAR, "flags" JSON, "payload" JSON,
    "trace_id" VARCHAR)"""
MEMORIES_DDL = """CREATE TABLE memories (
    "id" VARCHAR PRIMARY KEY, "content" VARCHAR, "kind" VARCHAR, "tags" VARCHAR[],
    "importance" DOUBLE, "recall_count" BIGINT, "agent" VARCHAR, "instance" VARCHAR,
    "private" BOOLEAN, "forgotten" BOOLEAN, "forgotten_reason" VARCHAR,
    "created_at" TIMESTAMPTZ, "updated_at" TIMESTAMPTZ, "updated_by" VARCHAR,
    "seq" BIGINT, "version" INTEGER)"""
EVENTS_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("agent", pa.string()),
        ("instance", pa.string()),
        ("memory_id", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("accepted_at", pa.timestamp("us", tz="UTC")),
        ("law_set", pa.string()),
        ("flags", pa.string()),
        ("payload", pa.string()),
        ("trace_id", pa.string()),
    ]
)
MEMORY_COLS = [
    "id",
    "content",
    "kind",
    "tags",
    "importance",
    "recall_count",
    "agent",
    "instance",
    "private",
    "forgotten",
    "forgotten_reason",
    "created_at",
    "updated_at",
    "updated_by",
    "seq",
    "version",
]


def make_batches(rows: int, batch: int, seed: int = 7) -> list[ProjectionBatch]:
    """A realistic stream: ~40% creates, the rest updates of recent memories."""
    rnd = random.Random(seed)
    state: dict[str, dict[str, Any]] = {}
    ids: list[str] = []
    out: list[ProjectionBatch] = []
    for start in range(1, rows + 1, batch):
        events: list[dict[str, Any]] = []
        versions: list[dict[str, Any]] = []
        mems: dict[str, dict[str, Any]] = {}
        docs: dict[str, dict[str, Any]] = {}
        end = min(start + batch, rows + 1)
        for seq in range(start, end):
            at = T0 + timedelta(milliseconds=seq * 37)
            agent = f"agent-{rnd.randrange(32):02d}"
            if not ids or rnd.random() < 0.4:
                mid = f"mem-{seq:08d}"
                ids.append(mid)
                prev = None
            else:
                mid = ids[max(0, len(ids) - 1 - int(rnd.expovariate(1 / 200)))]
                prev = state[mid]
            content = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(12, 60)))
            kind = "memory.created" if prev is None else "memory.updated"
            payload = {"content": content, "tags": ["a", "b"], "importance": 0.5}
            events.append(
                {
                    "seq": seq,
                    "event_id": f"01J{seq:023d}",
                    "type": kind,
                    "agent": agent,
                    "instance": f"{agent}/i-1",
                    "memory_id": mid,
                    "at": at,
                    "accepted_at": at + timedelta(milliseconds=3),
                    "law_set": "core@1",
                    "flags": '{"pii":false,"secret":false}',
                    "payload": json.dumps(payload),
                    "trace_id": f"{seq:032x}",
                }
            )
            row: dict[str, Any] = {
                "id": mid,
                "content": content,
                "kind": rnd.choice(["fact", "decision", "note"]),
                "tags": rnd.sample(WORDS, 3),
                "importance": rnd.random(),
                "recall_count": 0 if prev is None else prev["recall_count"] + 1,
                "agent": agent if prev is None else prev["agent"],
                "instance": f"{agent}/i-1",
                "private": rnd.random() < 0.1,
                "forgotten": False,
                "forgotten_reason": None,
                "created_at": at if prev is None else prev["created_at"],
                "updated_at": at,
                "updated_by": agent,
                "seq": seq,
                "version": 1 if prev is None else prev["version"] + 1,
            }
            state[mid] = row
            mems[mid] = row
            versions.append(
                {
                    "memory_id": mid,
                    "seq": seq,
                    "event_id": f"01J{seq:023d}",
                    "type": kind,
                    "agent": agent,
                    "instance": f"{agent}/i-1",
                    "at": at,
                    "state": json.dumps({"content": content, "version": row["version"]}),
                }
            )
            docs[mid] = {
                "memory_id": mid,
                "doc": rnd.randbytes(600 + 40 * row["version"]),
                "heads": [f"{seq:064x}"],
                "seq": seq,
            }
        out.append(
            ProjectionBatch(
                last_seq=end - 1,
                events=events,
                memories=list(mems.values()),
                versions=versions,
                docs=list(docs.values()),
            )
        )
    return out


def bench_store(
    tmp: Path, batches: list[ProjectionBatch]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    n_events = sum(len(b.events) for b in batches)
    n_rows = sum(len(b.events) + len(b.memories) + len(b.versions) + len(b.docs) for b in batches)
    store = DuckStore(tmp / "store.duckdb")
    try:
        per_batch: list[float] = []
        t0 = time.perf_counter()
        for b in batches:
            t = time.perf_counter()
            store.apply(b)
            per_batch.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - t0
        assert store.counts()["events"] == n_events
        reads = bench_reads(store, batches)
    finally:
        store.close()
    result = {
        "name": "DuckStore.apply (4 tables + checkpoint, 1 txn/batch)",
        "rows": n_rows,
        "events": n_events,
        "seconds": elapsed,
        "rows_per_s": n_rows / elapsed,
        "events_per_s": n_events / elapsed,
        "batch_ms_p50": statistics.median(per_batch) * 1000,
        "batch_ms_max": max(per_batch) * 1000,
    }
    return result, reads


def bench_reads(store: DuckStore, batches: list[ProjectionBatch]) -> list[dict[str, Any]]:
    ids = [m["id"] for m in batches[len(batches) // 2].memories]
    t = time.perf_counter()
    docs = store.load_docs(ids)
    load_s = time.perf_counter() - t
    assert len(docs) == len(ids)
    lat: list[float] = []
    for mid in ids[:200]:
        t = time.perf_counter()
        store.get_memory(mid)
        lat.append(time.perf_counter() - t)
    return [
        {"name": f"load_docs({len(ids)} ids)", "ms": load_s * 1000},
        {"name": "get_memory p50", "ms": statistics.median(lat) * 1000},
    ]


def bench_floor(tmp: Path, batches: list[ProjectionBatch]) -> list[dict[str, Any]]:
    """The same event rows, one table (same keys), same batches: Arrow build, then INSERT."""
    t0 = time.perf_counter()
    tables = [pa.Table.from_pylist(b.events, schema=EVENTS_SCHEMA) for b in batches]
    build_s = time.perf_counter() - t0
    n = sum(t.num_rows for t in tables)
    con = duckdb.connect(str(tmp / "floor.duckdb"))
    try:
        con.execute(EVENTS_DDL)
        t0 = time.perf_counter()
        for arrow_batch in tables:
            con.register("arrow_batch", arrow_batch)
            con.execute("INSERT INTO events SELECT * FROM arrow_batch")
            con.unregister("arrow_batch")
        insert_s = time.perf_counter() - t0
    finally:
        con.close()
    return [
        {
            "name": "floor: INSERT INTO events SELECT * FROM arrow",
            "rows": n,
            "seconds": insert_s,
            "rows_per_s": n / insert_s,
        },
        {
            "name": "  (Arrow build: Table.from_pylist, events)",
            "rows": n,
            "seconds": build_s,
            "rows_per_s": n / build_s,
        },
    ]


def bench_executemany(tmp: Path, batches: list[ProjectionBatch], small: int) -> dict[str, Any]:
    rows: list[list[Any]] = []
    for b in batches:
        rows.extend([m[c] for c in MEMORY_COLS] for m in b.memories)
        if len(rows) >= small:
            break
    rows = rows[:small]
    con = duckdb.connect(str(tmp / "executemany.duckdb"))
    try:
        con.execute(MEMORIES_DDL)
        marks = ", ".join("?" for _ in MEMORY_COLS)
        t0 = time.perf_counter()
        con.executemany(f"INSERT OR REPLACE INTO memories VALUES ({marks})", rows)
        elapsed = time.perf_counter() - t0
    finally:
        con.close()
    return {
        "name": "trap: executemany INSERT OR REPLACE, memories",
        "rows": len(rows),
        "seconds": elapsed,
        "rows_per_s": len(rows) / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="events to project")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch")
    parser.add_argument("--small", type=int, default=2000, help="rows for executemany")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    batches = make_batches(args.rows, args.batch)
    gen_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="bench-duckdb-") as d:
        tmp = Path(d)
        store, reads = bench_store(tmp, batches)
        floor, build = bench_floor(tmp, batches)
        trap = bench_executemany(tmp, batches, args.small)
    writes = [store, floor, build, trap]
    for w in writes:
        w["vs_floor"] = w["rows_per_s"] / floor["rows_per_s"]
    report = {
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "rows": args.rows,
        "batch": args.batch,
        "generate_s": gen_s,
        "writes": writes,
        "reads": reads,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(
        f"duckdb {report['duckdb']}, pyarrow {report['pyarrow']}: {args.rows} events, "
        f"batch {args.batch} (generated in {gen_s:.1f}s)"
    )
    name_w = max(len(w["name"]) for w in writes)
    print(f"{'write':<{name_w}}  {'rows':>8}  {'seconds':>8}  {'rows/s':>12}  {'vs floor':>9}")
    for w in writes:
        print(
            f"{w['name']:<{name_w}}  {w['rows']:>8}  {w['seconds']:>8.2f}  "
            f"{w['rows_per_s']:>12,.0f}  {w['vs_floor']:>8.4f}x"
        )
    print(
        f"apply: {store['events_per_s']:,.0f} events/s, batch p50 {store['batch_ms_p50']:.1f} ms,"
        f" max {store['batch_ms_max']:.1f} ms"
    )
    for r in reads:
        print(f"{r['name']:<{name_w}}  {r['ms']:>8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
