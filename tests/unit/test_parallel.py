"""The pure parts of the parallel fold: routing, a partition's fold, merging batches."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from projections import parallel
from projections.duckdb_store import _arrow, _unique_events
from projections.parallel import Entry, _Partition, combine, merge, partition_of, plan_workers
from projections.reducers import fold
from swarm.codec import encode
from swarm.events import LogRecord, MemoryUpdated
from swarm.jetstream import StoredMessage
from tests.unit.test_reducers import ALICE, CRITIC, M1, M2, SWARM, Log, sample_log

M3 = "01HZZZMEMORY0000000000003"


def longer_log() -> Log:
    log = sample_log()
    log.remember(ALICE, M3, "a third memory")
    log.edit(MemoryUpdated, CRITIC, M2, lambda e: e.set_content("another, edited"))
    log.edit(MemoryUpdated, ALICE, M3, lambda e: e.set_importance(0.9))
    return log


def entries(log: Log) -> list[Entry]:
    out = []
    for seq, record, trace in log.entries:
        mid = record.event.memory_id
        out.append(
            (seq, mid, f"swarm.{SWARM}.log.{record.event.agent}.{mid}", encode(record), trace)
        )
    return out


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def one_fold_tables(log: Log) -> dict[str, pa.Table]:
    whole = fold(log.entries, {})
    return {
        "events": _arrow("events", _unique_events(whole.events)),
        "memories": _arrow("memories", sorted(whole.memories.values(), key=lambda r: r["seq"])),
        "memory_versions": _arrow("memory_versions", whole.versions),
        "crdt_docs": _arrow("crdt_docs", sorted(whole.docs.values(), key=lambda r: r["seq"])),
    }


def split_of(workers: int, log: Log) -> parallel.Split:
    parts: list[list[Entry]] = [[] for _ in range(workers)]
    for entry in entries(log):
        parts[partition_of(entry[1], workers)].append(entry)
    records = pa.table(
        {"seq": pa.array([e[0] for e in entries(log)], pa.int64()),
         "record": pa.array([e[3] for e in entries(log)], pa.binary())}
    )  # fmt: skip
    return parallel.Split(
        last_seq=len(log.entries), parts=parts, new_ids=[set() for _ in parts], records=records
    )


def test_workers_are_planned_by_the_log_and_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "available_cpus", lambda: 2)
    assert plan_workers(None, parallel.PARALLEL_MIN - 1) == 0
    assert plan_workers(None, parallel.PARALLEL_MIN) == 2
    assert (plan_workers(0, 10**6), plan_workers(3, 5)) == (0, 3)
    monkeypatch.setattr(parallel, "available_cpus", lambda: 1)
    assert plan_workers(None, 10**6) == 0
    monkeypatch.setattr(parallel, "available_cpus", lambda: 64)
    assert plan_workers(None, 10**6) == parallel.MAX_WORKERS
    monkeypatch.setattr(parallel.sys, "executable", "")  # no interpreter to start
    assert plan_workers(None, 10**6) == 0


def test_a_memory_always_goes_to_the_same_worker() -> None:
    assert partition_of(M1, 3) == partition_of(M1, 3)  # crc32: the same in every process
    assert {partition_of(f"mem-{i:04d}", 2) for i in range(20)} == {0, 1}


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("cache", [1, 100])
def test_partitions_fold_the_rows_of_one_fold(workers: int, cache: int) -> None:
    log = longer_log()
    split = split_of(workers, log)
    partitions = [_Partition(cache) for _ in range(workers)]
    shares = []
    for partition, part in zip(partitions, split.parts, strict=True):
        for entry in part:  # one record per batch: documents evicted and reloaded
            shares.append(partition.fold([entry], {})["tables"])
    merged = combine([merge([share], _empty_split(split)) for share in shares])
    expected = one_fold_tables(log)
    for name, table in expected.items():
        assert rows(merged[name].sort_by("seq")) == rows(table.sort_by("seq")), name


def _empty_split(split: parallel.Split) -> parallel.Split:
    return parallel.Split(
        last_seq=split.last_seq,
        parts=[],
        new_ids=[],
        records=split.records,
    )


def test_a_resumed_partition_continues_from_the_saved_documents() -> None:
    log = longer_log()
    first = fold(log.entries[:4], {})
    saved = {mid: (row["doc"], first.touched[mid].version) for mid, row in first.docs.items()}
    partition = _Partition(10)
    later = [e for e in entries(log) if e[0] > 4]
    tables = partition.fold(later, saved)["tables"]
    whole = fold(log.entries, {})
    assert {r["id"]: r["version"] for r in rows(tables["memories"])} == {
        mid: row["version"] for mid, row in whole.memories.items() if row["seq"] > 4
    }


def test_a_record_whose_memory_is_not_its_subjects_is_refused() -> None:
    (seq, _, subject, data, trace), *_ = entries(sample_log())
    assert _Partition(10).fold([(seq, M2, subject, data, trace)], {}) == {"misrouted": seq}


def test_an_unreadable_entry_gets_its_row_in_order() -> None:
    good = entries(sample_log())[:2]
    bad: Entry = (3, M1, f"swarm.{SWARM}.log.planner.{M1}", b'{"forged": 1}', None)
    events = rows(_Partition(10).fold([*good, bad], {})["tables"]["events"])
    assert [(e["seq"], e["type"]) for e in events][-1] == (3, "unreadable")


def test_system_records_are_split_out_and_erasures_kept() -> None:
    log = sample_log()
    messages = [
        StoredMessage(seq=seq, subject=subject, data=data, headers={})
        for seq, _, subject, data, _ in entries(log)
    ]
    messages.append(StoredMessage(seq=7, subject=f"swarm.{SWARM}.sys.laws", data=b"{}", headers={}))
    pool = parallel.FoldPool(2, cache_size=10)
    split = pool.split(messages, after=1)
    assert split is not None and split.last_seq == 7
    assert sorted(e[0] for part in split.parts for e in part) == [2, 3, 4, 5, 6]
    assert [e["type"] for e in split.events] == ["unreadable"]  # "{}" is no system record
    assert split.records is not None and split.records["seq"].to_pylist() == [2, 3, 4, 5, 6, 7]
    assert set().union(*split.new_ids) == {M1, M2}
    again = pool.split(messages[-2:], after=5)
    assert again is not None and set().union(*again.new_ids) == set()  # seen before


def test_a_group_of_batches_keeps_the_latest_memory_row_and_the_first_event() -> None:
    log = longer_log()
    batches = []
    known: dict[str, Any] = {}
    for lo, hi in ((0, 4), (4, 9)):
        out = fold(log.entries[lo:hi], known)
        known = {**known, **out.touched}
        batches.append(
            {
                "events": _arrow("events", out.events),
                "memories": _arrow("memories", list(out.memories.values())),
                "memory_versions": _arrow("memory_versions", out.versions),
                "crdt_docs": _arrow("crdt_docs", list(out.docs.values())),
            }
        )
    # The same event id in both batches (a re-published event): the first one stays.
    dup = dict(rows(batches[0]["events"])[0], seq=99)
    batches[1]["events"] = pa.concat_tables([batches[1]["events"], _arrow("events", [dup])])
    merged = combine(batches)
    expected = one_fold_tables(log)
    assert rows(merged["memories"].sort_by("seq")) == rows(expected["memories"])
    assert rows(merged["crdt_docs"].sort_by("seq")) == rows(expected["crdt_docs"])
    assert [e["seq"] for e in rows(merged["events"])] == list(range(1, 10))
    assert isinstance(log.entries[0][1], LogRecord)
