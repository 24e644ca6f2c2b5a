"""Rollback targets and compensating changes: pure, on real Automerge documents."""

from __future__ import annotations

from dataclasses import replace

from swarm.crdt import MemoryDoc, MemoryState, author, new_actor
from swarm.events import RollbackSpec
from swarm.rollback import Version, compensate, target

ALICE = new_actor("s", "alice", "one")
BOB = new_actor("s", "bob", "one")
GATE = new_actor("s", "_gate", "rollback")


def state(**fields: object) -> MemoryState:
    base = MemoryState(
        id="MEMORY000001",
        content="standup at 9:30",
        kind="fact",
        tags=("team",),
        importance=0.5,
        recall_count=0,
        agent="alice",
        instance="one",
        private=False,
        created_at="2026-01-01T00:00:00+00:00",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def spec(to: int, scope: str = "swarm", agent: str | None = None) -> RollbackSpec:
    return RollbackSpec(to_seq=to, scope=scope, agent=agent, reason="test")  # type: ignore[arg-type]


HISTORY = [
    Version(1, "alice", state()),
    Version(4, "bob", state(content="standup at 10:00")),
    Version(6, "alice", state(content="standup at 10:00", tags=("team", "daily"))),
    Version(8, "bob", state(content="standup at 10:00", tags=("team", "daily"), importance=0.9)),
]


def test_swarm_and_memory_scope_restore_the_state_at_the_point() -> None:
    assert target(HISTORY, spec(1)) == state()
    assert target(HISTORY, spec(5)) == HISTORY[1].state
    assert target(HISTORY, spec(8)) == HISTORY[-1].state  # nothing after: unchanged
    assert target(HISTORY, spec(0)) is None  # created after the point: forgotten


def test_agent_scope_undoes_only_fields_whose_latest_value_is_the_agents() -> None:
    undone = target(HISTORY, spec(1, "agent", "bob"))
    assert undone is not None
    assert undone.content == "standup at 9:30"  # bob's, the latest: undone
    assert undone.tags == ("team", "daily")  # alice's later write: kept
    assert undone.importance == 0.5  # bob's: undone
    # Undoing alice keeps bob's content (bob wrote it) and drops alice's tag.
    undone = target(HISTORY, spec(1, "agent", "alice"))
    assert undone is not None
    assert undone.content == "standup at 10:00" and undone.tags == ("team",)


def test_agent_scope_returns_to_the_value_before_the_agents_latest_run() -> None:
    history = [
        Version(1, "alice", state()),
        Version(2, "bob", state(content="b1")),
        Version(3, "carol", state(content="c1")),
        Version(4, "bob", state(content="b2")),
        Version(5, "bob", state(content="b3")),
    ]
    undone = target(history, spec(1, "agent", "bob"))
    assert undone is not None and undone.content == "c1"


def test_agent_scope_forgets_what_the_agent_created_and_revives_what_it_forgot() -> None:
    created_by_bob = [Version(5, "bob", state(agent="bob")), Version(6, "alice", state())]
    assert target(created_by_bob, spec(3, "agent", "bob")) is None
    forgot = [Version(1, "alice", state()), Version(5, "bob", state(forgotten=True))]
    revived = target(forgot, spec(3, "agent", "bob"))
    assert revived is not None and revived.forgotten is False


def doc_of(*edits: tuple[bytes, object]) -> MemoryDoc:
    doc = MemoryDoc()
    for actor, fn in edits:
        with author(doc, actor) as (edit, out):
            fn(edit)  # type: ignore[operator]
        doc, _ = doc.apply(out[0], strict=True)
    return doc


def create(edit: object) -> None:
    s = state()
    edit.create(  # type: ignore[attr-defined]
        memory_id=s.id,
        content=s.content,
        kind=s.kind,
        tags=list(s.tags),
        importance=s.importance,
        agent=s.agent,
        instance=s.instance,
        private=False,
        created_at=s.created_at,
    )


def test_compensate_writes_one_new_change_that_restores_every_field() -> None:
    def rewrite(edit: object) -> None:
        edit.set_content("standup at 10:00")  # type: ignore[attr-defined]
        edit.add_tag("daily")  # type: ignore[attr-defined]
        edit.set_kind("note")  # type: ignore[attr-defined]
        edit.forget("moved")  # type: ignore[attr-defined]

    doc = doc_of((ALICE, create), (BOB, rewrite))
    current = doc.state()
    assert current is not None and current.forgotten
    change = compensate(doc, current, state(), GATE, "rollback")
    assert change is not None
    restored, new = doc.apply(change, strict=True)
    assert len(new) == 1 and new[0].actor == GATE.hex()
    after = restored.state()
    assert after is not None
    assert (after.content, after.kind, after.tags, after.forgotten) == (
        "standup at 9:30",
        "fact",
        ("team",),
        False,
    )
    assert after.forgotten_reason is None
    # A concurrent stale copy merging later does not undo it: the restore is a new change.
    assert compensate(restored, after, state(), GATE, "again") is None


def test_compensate_forgets_with_the_reason_and_leaves_a_forgotten_one_alone() -> None:
    doc = doc_of((ALICE, create))
    current = doc.state()
    assert current is not None
    change = compensate(doc, current, None, GATE, "rollback r1")
    assert change is not None
    forgotten = doc.apply(change, strict=True)[0].state()
    assert forgotten is not None and forgotten.forgotten
    assert forgotten.forgotten_reason == "rollback r1"
    assert compensate(doc.apply(change, strict=True)[0], forgotten, None, GATE, "x") is None
