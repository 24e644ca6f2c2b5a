"""The pure fold: log records in, table rows out."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from automerge.core import ROOT, ObjType, ScalarType

from projections.reducers import Folded, Projected, fold, recall_row
from swarm.crdt import Editor, MemoryDoc, author, new_actor
from swarm.events import (
    LawResult,
    LogRecord,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
    Verdict,
)
from tests.unit.builders import hand_made

SWARM = "swarm-1"
M1 = "01HZZZMEMORY0000000000001"
M2 = "01HZZZMEMORY0000000000002"
CREATED = "2024-05-01T12:00:00+00:00"
T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
LAW_SET = "1:0123456789ab"

Writer = tuple[str, str, bytes]
ALICE: Writer = ("planner", "one", new_actor(SWARM, "planner", "one"))
ALICE2: Writer = ("planner", "two", new_actor(SWARM, "planner", "two"))
CRITIC: Writer = ("critic", "one", new_actor(SWARM, "critic", "one"))

Entry = tuple[int, LogRecord, str | None]


class Log:
    """Builds a log the way the gate would: each writer edits the latest document."""

    def __init__(self) -> None:
        self.docs: dict[str, MemoryDoc] = {}
        self.entries: list[Entry] = []

    def append(
        self,
        cls: type[MemoryEvent],
        writer: Writer,
        mid: str,
        change: bytes,
        verdict: Verdict | None = None,
        **extra: object,
    ) -> Entry:
        agent, instance, actor = writer
        event = cls(  # type: ignore[call-arg]
            swarm=SWARM,
            agent=agent,
            instance=instance,
            actor=actor.hex(),
            memory_id=mid,
            change=change,
            **extra,
        )
        seq = len(self.entries) + 1
        record = LogRecord(
            event=event,  # type: ignore[arg-type]
            verdict=verdict or Verdict(law_set=LAW_SET),
            accepted_at=T0 + timedelta(seconds=seq),
        )
        self.docs[mid], _ = self.docs.get(mid, MemoryDoc()).apply(change)
        entry = (seq, record, f"trace-{seq}")
        self.entries.append(entry)
        return entry

    def remember(self, writer: Writer, mid: str, content: str, **kw: object) -> Entry:
        agent, instance, actor = writer
        with author(MemoryDoc(), actor) as (edit, out):
            edit.create(
                memory_id=mid,
                content=content,
                kind="fact",
                tags=["t"],
                importance=0.5,
                agent=agent,
                instance=instance,
                private=False,
                created_at=CREATED,
            )
        return self.append(MemoryRemembered, writer, mid, out[0], **kw)

    def edit(
        self,
        cls: type[MemoryEvent],
        writer: Writer,
        mid: str,
        fn: Callable[[Editor], None],
        **kw: object,
    ) -> Entry:
        with author(self.docs[mid], writer[2]) as (edit, out):
            fn(edit)
        return self.append(cls, writer, mid, out[0], **kw)


def sample_log() -> Log:
    log = Log()
    log.remember(ALICE, M1, "first content")
    log.edit(MemoryUpdated, ALICE2, M1, lambda e: e.set_content("second content"))
    log.edit(
        MemoryReinforced,
        CRITIC,
        M1,
        lambda e: e.reinforce(),
        verdict=Verdict(
            law_set=LAW_SET, results=(LawResult(law="review", verdict="flag", reason="look"),)
        ),
    )
    log.remember(CRITIC, M2, "another memory")
    log.edit(MemoryForgotten, ALICE, M1, lambda e: e.forget("old"), reason="old")
    log.edit(MemoryUpdated, CRITIC, M2, lambda e: e.add_tag("extra"))
    return log


def doc_snapshot(doc: MemoryDoc) -> tuple[object, list[str]]:
    return doc.state(), doc.heads()


def comparable(folded: Folded) -> dict[str, object]:
    return {
        "last_seq": folded.last_seq,
        "events": folded.events,
        "versions": folded.versions,
        "memories": folded.memories,
        "docs": {
            k: (v["heads"], v["seq"], MemoryDoc.load(v["doc"]).state())
            for k, v in folded.docs.items()
        },
        "touched": {k: (p.version, doc_snapshot(p.doc)) for k, p in folded.touched.items()},
    }


# -- rows --------------------------------------------------------------------------------------


def test_fold_produces_one_event_row_per_record() -> None:
    log = sample_log()
    out = fold(log.entries, {})

    assert out.last_seq == 6
    assert [r["seq"] for r in out.events] == [1, 2, 3, 4, 5, 6]
    assert [r["type"] for r in out.events] == [
        "memory.remembered",
        "memory.updated",
        "memory.reinforced",
        "memory.remembered",
        "memory.forgotten",
        "memory.updated",
    ]
    for row, (seq, record, trace) in zip(out.events, log.entries, strict=True):
        event = record.event
        assert row["event_id"] == event.id
        assert (row["agent"], row["instance"], row["memory_id"]) == (
            event.agent,
            event.instance,
            event.memory_id,
        )
        assert (row["at"], row["accepted_at"]) == (event.at, record.accepted_at)
        assert row["law_set"] == LAW_SET
        assert row["trace_id"] == trace == f"trace-{seq}"
        assert json.loads(row["payload"]) == json.loads(event.model_dump_json())
    assert json.loads(out.events[2]["flags"]) == [
        {"law": "review", "verdict": "flag", "reason": "look"}
    ]
    assert json.loads(out.events[0]["flags"]) == []


def test_fold_keeps_the_latest_memory_row_with_seq_version_and_writer() -> None:
    log = sample_log()
    out = fold(log.entries, {})

    m1, m2 = out.memories[M1], out.memories[M2]
    assert (m1["seq"], m1["version"], m1["updated_by"]) == (5, 4, "planner@one")
    assert (m2["seq"], m2["version"], m2["updated_by"]) == (6, 2, "critic@one")
    assert m1["updated_at"] == log.entries[4][1].accepted_at
    assert m1["created_at"] == datetime.fromisoformat(CREATED)
    assert (m1["agent"], m1["instance"]) == ("planner", "one")  # the creator, not the last writer
    assert m1["content"] == "second content"
    assert m1["recall_count"] == 1
    assert (m1["forgotten"], m1["forgotten_reason"]) == (True, "old")
    assert m2["tags"] == ["extra", "t"]
    assert m2["forgotten"] is False
    assert "recall" not in m1


def test_fold_writes_a_version_row_per_event_with_the_state_after_it() -> None:
    log = sample_log()
    out = fold(log.entries, {})

    assert [(v["memory_id"], v["seq"], v["type"]) for v in out.versions] == [
        (M1, 1, "memory.remembered"),
        (M1, 2, "memory.updated"),
        (M1, 3, "memory.reinforced"),
        (M2, 4, "memory.remembered"),
        (M1, 5, "memory.forgotten"),
        (M2, 6, "memory.updated"),
    ]
    states = [json.loads(v["state"]) for v in out.versions]
    assert [s["content"] for s in states[:3]] == [
        "first content",
        "second content",
        "second content",
    ]
    assert [s["recall_count"] for s in states[:3]] == [0, 0, 1]
    assert states[4]["forgotten"] is True
    for version, (_, record, _) in zip(out.versions, log.entries, strict=True):
        assert version["event_id"] == record.event.id
        assert (version["agent"], version["instance"]) == (
            record.event.agent,
            record.event.instance,
        )
        assert version["at"] == record.accepted_at


def test_fold_saves_each_memorys_latest_document() -> None:
    log = sample_log()
    out = fold(log.entries, {})

    assert set(out.docs) == {M1, M2}
    for mid, seq in ((M1, 5), (M2, 6)):
        row = out.docs[mid]
        assert (row["memory_id"], row["seq"]) == (mid, seq)
        assert row["heads"] == log.docs[mid].heads()
        assert doc_snapshot(MemoryDoc.load(row["doc"])) == doc_snapshot(log.docs[mid])
        assert doc_snapshot(out.touched[mid].doc) == doc_snapshot(log.docs[mid])
    assert (out.touched[M1].version, out.touched[M2].version) == (4, 2)


def test_fold_of_nothing_is_empty() -> None:
    out = fold([], {})
    assert out == Folded()


def test_fold_continues_versions_from_known_memories() -> None:
    log = sample_log()
    first = fold(log.entries[:3], {})
    rest = fold(log.entries[3:], first.touched)
    assert rest.memories[M1]["version"] == 4
    assert rest.memories[M2]["version"] == 2


def test_fold_does_not_mutate_known() -> None:
    log = sample_log()
    known = dict(fold(log.entries[:2], {}).touched)
    before = {k: (p, p.version, p.doc, p.doc.save()) for k, p in known.items()}
    keys = set(known)

    out = fold(log.entries[2:], known)

    assert set(known) == keys
    for mid, (projected, version, doc, saved) in before.items():
        assert known[mid] is projected
        assert projected.version == version
        assert projected.doc is doc
        assert doc.save() == saved
    assert out.touched[M1] is not known[M1]
    assert out.touched[M1].version == 4


@pytest.mark.parametrize("split", range(7))
def test_fold_in_two_batches_equals_fold_in_one(split: int) -> None:
    log = sample_log()
    whole = fold(log.entries, {})

    first = fold(log.entries[:split], {})
    second = fold(log.entries[split:], {**first.touched})
    combined = Folded(
        last_seq=max(first.last_seq, second.last_seq),
        events=first.events + second.events,
        versions=first.versions + second.versions,
        memories={**first.memories, **second.memories},
        docs={**first.docs, **second.docs},
        touched={**first.touched, **second.touched},
    )
    assert comparable(combined) == comparable(whole)


def test_fold_in_many_batches_equals_fold_in_one() -> None:
    log = sample_log()
    whole = fold(log.entries, {})
    known: dict[str, Projected] = {}
    memories: dict[str, object] = {}
    versions: list[dict[str, object]] = []
    for entry in log.entries:
        out = fold([entry], known)
        known = {**known, **out.touched}
        memories.update(out.memories)
        versions.extend(out.versions)
    assert memories == whole.memories
    assert versions == whole.versions
    assert {k: (p.version, doc_snapshot(p.doc)) for k, p in known.items()} == {
        k: (p.version, doc_snapshot(p.doc)) for k, p in whole.touched.items()
    }


def test_fold_of_a_forgotten_memory_marks_the_row_forgotten() -> None:
    log = Log()
    log.remember(ALICE, M1, "short lived")
    log.edit(MemoryForgotten, ALICE, M1, lambda e: e.forget(None))
    out = fold(log.entries, {})
    assert out.memories[M1]["forgotten"] is True
    assert out.memories[M1]["forgotten_reason"] is None
    assert recall_row(out.memories[M1])["forgotten"] is True


def test_fold_of_a_replayed_record_bumps_the_version_but_not_the_state() -> None:
    log = Log()
    entry = log.remember(ALICE, M1, "once")
    out = fold([entry, (2, entry[1], None)], {})
    assert out.memories[M1]["version"] == 2
    assert out.memories[M1]["content"] == "once"
    assert out.docs[M1]["heads"] == log.docs[M1].heads()


def test_fold_holds_an_event_whose_memory_is_not_known_yet() -> None:
    log = sample_log()
    # The creation of M1 is missing from `known`: its update waits in the document.
    out = fold([log.entries[1]], {})
    assert M1 not in out.memories
    assert out.versions == []
    assert [r["seq"] for r in out.events] == [2]
    assert out.docs[M1]["heads"] == []

    later = fold([log.entries[0]], out.touched)
    state = MemoryDoc.load(later.docs[M1]["doc"]).state()
    assert state is not None
    assert state.content == "second content"
    assert later.memories[M1]["content"] == "second content"


def test_fold_skips_the_row_of_an_unreadable_memory_but_keeps_going() -> None:
    log = Log()
    log.remember(ALICE, M1, "fine")
    bad = hand_made(log.docs[M1], ALICE[2], lambda tx: tx.put(ROOT, "content", ScalarType.Int, 3))
    log.append(MemoryUpdated, ALICE, M1, bad)
    log.remember(CRITIC, M2, "still folded")

    out = fold(log.entries, {})
    assert out.memories[M1]["seq"] == 1  # the last readable row stays
    assert [v["seq"] for v in out.versions] == [1, 3]
    assert [r["seq"] for r in out.events] == [1, 2, 3]
    assert out.docs[M1]["seq"] == 2
    assert out.memories[M2]["content"] == "still folded"


def test_fold_survives_a_memory_whose_field_became_an_object() -> None:
    log = Log()
    log.remember(ALICE, M1, "fine")
    bad = hand_made(log.docs[M1], ALICE[2], lambda tx: tx.put_object(ROOT, "kind", ObjType.Map))
    log.append(MemoryUpdated, ALICE, M1, bad)
    out = fold(log.entries, {})
    assert out.memories[M1]["seq"] == 1


def test_recall_row_copies_the_searchable_fields() -> None:
    out = fold(sample_log().entries, {})
    row = recall_row(out.memories[M2])
    assert row == {
        "id": M2,
        "content": "another memory",
        "kind": "fact",
        "tags": ["extra", "t"],
        "agent": "critic",
        "private": False,
        "importance": 0.5,
        "seq": 6,
        "forgotten": False,
    }
