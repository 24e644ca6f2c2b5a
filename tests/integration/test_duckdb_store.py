"""DuckStore against real DuckDB files (no NATS needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.duckdb_store import SCHEMA_VERSION, DuckStore, ProjectionBatch
from swarm.errors import StoreError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- a fake log


def _ts(seq: int) -> datetime:
    return T0 + timedelta(seconds=seq)


def _event(seq: int, memory_id: str, kind: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_id": f"ev-{seq:06d}",
        "type": kind,
        "agent": f"agent-{seq % 3}",
        "instance": "i-1",
        "memory_id": memory_id,
        "at": _ts(seq),
        "accepted_at": _ts(seq) + timedelta(milliseconds=5),
        "law_set": "v1",
        "flags": json.dumps({"pii": False}),
        "payload": json.dumps({"content": f"text {seq}", "n": seq}),
        "trace_id": f"trace-{seq}",
    }


class FakeLog:
    """Folds a deterministic event stream into batches the way the projector would."""

    def __init__(self, n_events: int, n_memories: int) -> None:
        self.n_events = n_events
        self.n_memories = n_memories

    def memory_of(self, seq: int) -> str:
        return f"mem-{(seq - 1) % self.n_memories:04d}"

    def batches(self, size: int) -> list[ProjectionBatch]:
        state: dict[str, dict[str, Any]] = {}
        out: list[ProjectionBatch] = []
        for start in range(1, self.n_events + 1, size):
            seqs = range(start, min(start + size, self.n_events + 1))
            events, versions = [], []
            touched: dict[str, dict[str, Any]] = {}
            docs: dict[str, dict[str, Any]] = {}
            for seq in seqs:
                mid = self.memory_of(seq)
                prev = state.get(mid)
                kind = "memory.created" if prev is None else "memory.updated"
                if seq % 7 == 0 and prev is not None:
                    kind = "memory.forgotten"
                events.append(_event(seq, mid, kind))
                row = {
                    "id": mid,
                    "content": f"text {seq}",
                    "kind": "fact",
                    "tags": [f"t{seq % 4}", "shared"],
                    "importance": (seq % 10) / 10,
                    "recall_count": 0 if prev is None else prev["recall_count"] + 1,
                    "agent": "agent-0" if prev is None else prev["agent"],
                    "instance": "i-1",
                    "private": seq % 5 == 0,
                    "forgotten": kind == "memory.forgotten",
                    "forgotten_reason": "obsolete" if kind == "memory.forgotten" else None,
                    "created_at": _ts(seq) if prev is None else prev["created_at"],
                    "updated_at": _ts(seq),
                    "updated_by": f"agent-{seq % 3}",
                    "seq": seq,
                    "version": 1 if prev is None else prev["version"] + 1,
                }
                state[mid] = row
                touched[mid] = row
                versions.append(
                    {
                        "memory_id": mid,
                        "seq": seq,
                        "event_id": f"ev-{seq:06d}",
                        "type": kind,
                        "agent": f"agent-{seq % 3}",
                        "instance": "i-1",
                        "at": _ts(seq),
                        "state": json.dumps({"content": row["content"], "v": row["version"]}),
                    }
                )
                docs[mid] = {
                    "memory_id": mid,
                    "doc": f"automerge:{mid}:{seq}".encode() + b"\x00\xff",
                    "heads": [f"h{seq}"],
                    "seq": seq,
                }
            out.append(
                ProjectionBatch(
                    last_seq=seqs[-1],
                    events=events,
                    memories=list(touched.values()),
                    versions=versions,
                    docs=list(docs.values()),
                )
            )
        return out


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = DuckStore(tmp_path / "proj" / "state.duckdb")
    yield s
    s.close()


def _apply_all(store: DuckStore, batches: list[ProjectionBatch]) -> None:
    for b in batches:
        store.apply(b)


# --------------------------------------------------------------------------- tests


def test_apply_then_read_back_returns_rows(store: DuckStore) -> None:
    log = FakeLog(n_events=12, n_memories=3)
    _apply_all(store, log.batches(5))

    assert store.checkpoint() == 12
    mem = store.get_memory("mem-0000")
    assert mem is not None
    assert mem["seq"] == 10
    assert mem["version"] == 4
    assert mem["tags"] == ["t2", "shared"]
    assert mem["created_at"] == _ts(1).isoformat()
    assert mem["updated_at"] == _ts(10).isoformat()
    assert mem["importance"] == pytest.approx(0.0)
    assert store.get_memory("nope") is None

    hist = store.history("mem-0000")
    assert [h["seq"] for h in hist] == [1, 4, 7, 10]
    assert hist[0]["state"] == {"content": "text 1", "v": 1}
    assert hist[-1]["at"] == _ts(10).isoformat()
    assert hist[2]["type"] == "memory.forgotten"

    events = store.events_since(0)
    assert [e["seq"] for e in events] == list(range(1, 13))
    assert events[0]["payload"] == {"content": "text 1", "n": 1}
    assert events[0]["flags"] == {"pii": False}
    assert events[0]["accepted_at"] == (_ts(1) + timedelta(milliseconds=5)).isoformat()
    assert [e["seq"] for e in store.events_since(10)] == [11, 12]
    assert [e["seq"] for e in store.events_since(0, limit=3)] == [1, 2, 3]

    docs = store.load_docs(["mem-0000", "mem-0002", "missing", "mem-0000"])
    assert docs == {
        "mem-0000": b"automerge:mem-0000:10\x00\xff",
        "mem-0002": b"automerge:mem-0002:12\x00\xff",
    }
    assert store.load_docs([]) == {}
    assert store.load_docs_with_version(["mem-0001", "missing"]) == {
        "mem-0001": (b"automerge:mem-0001:11\x00\xff", 4)
    }


def test_apply_accepts_dict_json_and_iso_timestamps(store: DuckStore) -> None:
    ev = _event(1, "m", "memory.created")
    ev["payload"] = {"b": 2, "a": 1}
    ev["at"] = _ts(1).isoformat()
    store.apply(ProjectionBatch(last_seq=1, events=[ev]))
    (row,) = store.events_since(0)
    assert row["payload"] == {"a": 1, "b": 2}
    assert row["at"] == _ts(1).isoformat()


def test_apply_same_batch_twice_changes_nothing(store: DuckStore) -> None:
    batches = FakeLog(n_events=30, n_memories=4).batches(10)
    _apply_all(store, batches)
    before = store.table_digest()
    _apply_all(store, batches)
    store.apply(batches[-1])
    assert store.table_digest() == before
    assert store.checkpoint() == 30


def test_apply_batch_at_or_below_checkpoint_is_ignored(store: DuckStore) -> None:
    batches = FakeLog(n_events=20, n_memories=2).batches(10)
    _apply_all(store, batches)
    before = store.table_digest()
    stale = ProjectionBatch(
        last_seq=15,
        events=[_event(21, "mem-x", "memory.created")],
        memories=[{"id": "mem-x", "content": "late", "seq": 21}],
        versions=[{"memory_id": "mem-x", "seq": 21, "state": "{}"}],
        docs=[{"memory_id": "mem-x", "doc": b"x", "heads": [], "seq": 21}],
    )
    store.apply(stale)
    assert store.table_digest() == before
    assert store.get_memory("mem-x") is None
    assert store.checkpoint() == 20


def test_apply_overlapping_replay_does_not_regress_state(store: DuckStore) -> None:
    log = FakeLog(n_events=20, n_memories=2)
    fine = log.batches(5)
    _apply_all(store, fine)
    expected = store.table_digest()
    # A redelivered window straddling the checkpoint: old memory rows must not win.
    straddle = log.batches(10)[1]  # seq 11..20
    straddle.last_seq = 21
    straddle.memories = [dict(m, content="stale", seq=11) for m in straddle.memories]
    straddle.docs = [dict(d, doc=b"stale", seq=11) for d in straddle.docs]
    store.apply(straddle)
    got = store.table_digest()
    for table in ("events", "memories", "memory_versions", "crdt_docs"):
        assert got[table] == expected[table], table
    assert store.checkpoint() == 21


def test_apply_republished_event_id_is_skipped(store: DuckStore) -> None:
    store.apply(ProjectionBatch(last_seq=2, events=[_event(1, "m", "x"), _event(2, "m", "x")]))
    again = dict(_event(3, "m", "x"), event_id="ev-000001")  # same id, new stream seq
    twice = _event(4, "m", "x")
    store.apply(
        ProjectionBatch(last_seq=5, events=[again, twice, dict(twice), _event(5, "m", "x")])
    )
    assert [(e["seq"], e["event_id"]) for e in store.events_since(0)] == [
        (1, "ev-000001"),
        (2, "ev-000002"),
        (4, "ev-000004"),
        (5, "ev-000005"),
    ]
    assert store.checkpoint() == 5


def test_checkpoint_advances_monotonically(store: DuckStore) -> None:
    assert store.checkpoint() == 0
    assert store.checkpoint("other") == 0
    store.apply(ProjectionBatch(last_seq=5))
    assert store.checkpoint() == 5
    store.apply(ProjectionBatch(last_seq=3))
    assert store.checkpoint() == 5
    store.apply(ProjectionBatch(last_seq=9, checkpoint="rebuild"))
    assert store.checkpoint("rebuild") == 9
    assert store.checkpoint() == 5


def test_set_checkpoint_sets_exact_value(store: DuckStore) -> None:
    store.set_checkpoint("lance", 40)
    assert store.checkpoint("lance") == 40
    store.set_checkpoint("lance", 12)
    assert store.checkpoint("lance") == 12


@pytest.mark.parametrize(
    "breakage",
    ["wrong_type_in_events", "null_event_id", "bad_json_state", "bad_type_in_docs"],
)
def test_apply_failing_batch_rolls_back_entirely(store: DuckStore, breakage: str) -> None:
    good, bad = FakeLog(n_events=20, n_memories=3).batches(10)
    store.apply(good)
    before = store.table_digest()
    if breakage == "wrong_type_in_events":
        bad.events[3]["seq"] = "not-a-number"
    elif breakage == "null_event_id":
        bad.events[-1]["event_id"] = None  # NOT NULL: fails inside the transaction
    elif breakage == "bad_json_state":
        bad.versions[-1]["state"] = "{not json"  # fails after events and memories went in
    else:
        bad.docs[0]["doc"] = 12345
    with pytest.raises(StoreError, match=r"state\.duckdb"):
        store.apply(bad)
    assert store.table_digest() == before
    assert store.checkpoint() == 10
    assert store.counts()["events"] == 10
    # The store stays usable and the fixed batch applies.
    _, fixed = FakeLog(n_events=20, n_memories=3).batches(10)
    store.apply(fixed)
    assert store.checkpoint() == 20


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    log = FakeLog(n_events=25, n_memories=5)
    with DuckStore(path) as s:
        _apply_all(s, log.batches(10))
        s.set_checkpoint("lance", 20)
        digest = s.table_digest()
    with DuckStore(path) as s:
        assert s.table_digest() == digest
        assert s.checkpoint() == 25
        assert s.checkpoint("lance") == 20
    with DuckStore(path, read_only=True) as ro:
        assert ro.table_digest() == digest
        with pytest.raises(StoreError, match="read-only"):
            ro.apply(ProjectionBatch(last_seq=30))
    con = duckdb.connect(str(path), read_only=True)
    try:
        meta = con.execute('SELECT "value" FROM meta WHERE "key" = \'schema_version\'').fetchall()
    finally:
        con.close()
    assert meta == [(str(SCHEMA_VERSION),)]


def test_open_wrong_schema_version_raises(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    DuckStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET \"value\" = '99' WHERE \"key\" = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        DuckStore(path)


def test_open_read_only_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        DuckStore(tmp_path / "absent.duckdb", read_only=True)


def test_open_file_locked_by_other_process_raises(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    DuckStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"c = duckdb.connect({str(path)!r})\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match=r"in use by another process \(is `swarm up`"):
            DuckStore(path)
        with pytest.raises(StoreError, match="in use by another process"):
            DuckStore(path, read_only=True)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


def test_closed_store_raises(tmp_path: Path) -> None:
    s = DuckStore(tmp_path / "state.duckdb")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.counts()
    with pytest.raises(StoreError, match="closed"):
        s.apply(ProjectionBatch(last_seq=1))


def test_concurrent_readers_see_whole_batches_only(store: DuckStore) -> None:
    per_batch, n_batches = 40, 25
    log = FakeLog(n_events=per_batch * n_batches, n_memories=per_batch * n_batches)
    batches = log.batches(per_batch)  # every event creates a new memory
    done = threading.Event()
    errors: list[str] = []
    seen: set[int] = set()

    def reader() -> None:
        rounds = 0
        while not done.is_set():
            rounds += 1
            try:
                c = store.counts()
                total = c["memories"] + c["forgotten"]
                if c["events"] % per_batch or total != c["events"]:
                    errors.append(f"half a batch visible: {c}")
                seen.add(c["events"])
                if rounds % 10 == 0:
                    n = len(store.memories_since(0, limit=10**6))
                    if n % per_batch:
                        errors.append(f"memories_since saw {n} rows")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(repr(exc))
            time.sleep(0.001)  # let the writer in now and then (shared, loaded CI boxes)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        _apply_all(store, batches)
    finally:
        done.set()
        for t in readers:
            t.join(timeout=10)
    assert not errors, errors[:5]
    assert len(seen) > 2  # readers really ran while batches landed
    assert store.counts()["events"] == per_batch * n_batches


def test_counts_splits_live_and_forgotten(store: DuckStore) -> None:
    assert store.counts() == {
        "memories": 0,
        "forgotten": 0,
        "events": 0,
        "rejected": 0,
        "pending_approvals": 0,
    }
    log = FakeLog(n_events=14, n_memories=7)
    _apply_all(store, log.batches(4))
    # seq 14 forgets mem-0006 (seq 7 was its creation, so not a forget).
    assert store.counts() == {
        "memories": 6,
        "forgotten": 1,
        "events": 14,
        "rejected": 0,
        "pending_approvals": 0,
    }


def test_memories_since_orders_by_seq(store: DuckStore) -> None:
    _apply_all(store, FakeLog(n_events=10, n_memories=4).batches(3))
    # Final seqs: mem-0000 9, mem-0001 10, mem-0002 7, mem-0003 8.
    rows = store.memories_since(0)
    assert [(r["id"], r["seq"]) for r in rows] == [
        ("mem-0002", 7),
        ("mem-0003", 8),
        ("mem-0000", 9),
        ("mem-0001", 10),
    ]
    assert [r["id"] for r in store.memories_since(8)] == ["mem-0000", "mem-0001"]
    assert [r["id"] for r in store.memories_since(0, limit=1)] == ["mem-0002"]
    assert isinstance(rows[0]["tags"], list)


def _rejection(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_id": f"bad-{seq}",
        "type": "memory.created",
        "agent": "mallory",
        "instance": "i-9",
        "memory_id": None,
        "check": "secrets" if seq % 2 else "schema",
        "kind": "law" if seq % 2 else "check",
        "reason": "looks like an API key" if seq % 2 else "missing field",
        "where": "content[3:20]" if seq % 2 else None,
        "at": _ts(seq),
    }


def test_apply_rejections_then_read_back(store: DuckStore) -> None:
    store.apply_rejections([_rejection(s) for s in (1, 2, 3)], last_seq=3)
    store.apply_rejections([_rejection(s) for s in (1, 2, 3)], last_seq=3)  # replay
    store.apply_rejections([_rejection(s) for s in (3, 4)], last_seq=4)  # overlap
    rows = store.rejections_since()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["check"] == "secrets"
    assert rows[0]["where"] == "content[3:20]"
    assert rows[1]["where"] is None
    assert rows[0]["at"] == _ts(1).isoformat()
    assert [r["seq"] for r in store.rejections_since(2, limit=1)] == [3]
    assert store.checkpoint("rejections") == 4
    assert store.checkpoint() == 0
    assert store.counts()["rejected"] == 4


def test_apply_rejections_failing_rows_roll_back(store: DuckStore) -> None:
    store.apply_rejections([_rejection(1)], last_seq=1)
    bad = [_rejection(2), dict(_rejection(3), seq="x")]
    with pytest.raises(StoreError):
        store.apply_rejections(bad, last_seq=3)
    assert store.checkpoint("rejections") == 1
    assert [r["seq"] for r in store.rejections_since()] == [1]


def test_table_digest_matches_for_different_batch_split(tmp_path: Path) -> None:
    log = FakeLog(n_events=100, n_memories=13)
    digests = []
    for size in (100, 10, 7):
        with DuckStore(tmp_path / f"split-{size}.duckdb") as s:
            _apply_all(s, log.batches(size))
            s.apply_rejections([_rejection(1)], last_seq=1)
            digests.append(s.table_digest())
    assert digests[0] == digests[1] == digests[2]
    assert set(digests[0]) == {
        "events",
        "event_records",
        "memories",
        "memory_versions",
        "crdt_docs",
        "rejections",
        "checkpoints",
    }


def test_table_digest_differs_when_content_differs(tmp_path: Path) -> None:
    log = FakeLog(n_events=20, n_memories=4)
    with DuckStore(tmp_path / "a.duckdb") as a, DuckStore(tmp_path / "b.duckdb") as b:
        batches_a = log.batches(10)
        batches_b = log.batches(10)
        batches_b[1].docs[0]["doc"] = b"different bytes"
        batches_b[1].memories[0]["tags"] = ["other"]
        _apply_all(a, batches_a)
        _apply_all(b, batches_b)
        da, db = a.table_digest(), b.table_digest()
        assert da["crdt_docs"] != db["crdt_docs"]
        assert da["memories"] != db["memories"]
        assert da["events"] == db["events"]
        a.set_checkpoint("lance", 3)
        assert a.table_digest()["checkpoints"] != db["checkpoints"]
