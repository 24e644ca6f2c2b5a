"""Memories as Automerge documents: authoring, applying, and convergence."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from automerge.core import ROOT, ObjType, ScalarType, Transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm.crdt import Editor, MemoryDoc, MemoryState, author, instance_tag, new_actor
from swarm.errors import ChangeError
from tests.unit.builders import hand_made

SWARM = "swarm-1"
AGENT = "planner"
MID = "01HZZZMEMORY0000000000001"
CREATED = "2024-05-01T12:00:00+00:00"


# -- helpers -------------------------------------------------------------------------------


def create_change(
    actor: bytes,
    *,
    content: str = "the build uses uv",
    kind: str = "fact",
    tags: tuple[str, ...] = ("build",),
    importance: float = 0.5,
    private: bool = False,
) -> bytes:
    with author(MemoryDoc(), actor) as (edit, out):
        edit.create(
            memory_id=MID,
            content=content,
            kind=kind,
            tags=list(tags),
            importance=importance,
            agent=AGENT,
            instance="one",
            private=private,
            created_at=CREATED,
        )
    return out[0]


def edit(doc: MemoryDoc, actor: bytes, fn: Callable[[Editor], None]) -> tuple[bytes, MemoryDoc]:
    """One change made by ``actor`` on top of ``doc``, and the writer's doc afterwards."""
    with author(doc, actor) as (editor, out):
        fn(editor)
    assert out, "the edit changed nothing"
    change, saved = out
    return change, MemoryDoc.load(saved)


def edit_output(doc: MemoryDoc, actor: bytes, fn: Callable[[Editor], None]) -> list[bytes]:
    """What author() leaves in its output list."""
    with author(doc, actor) as (editor, out):
        fn(editor)
    return out


def apply_all(doc: MemoryDoc, changes: list[bytes], *, strict: bool = False) -> MemoryDoc:
    for change in changes:
        doc, _ = doc.apply(change, strict=strict)
    return doc


def snapshot(doc: MemoryDoc) -> tuple[MemoryState | None, list[str]]:
    return doc.state(), doc.heads()


@pytest.fixture
def alice() -> bytes:
    return new_actor(SWARM, AGENT, "one")


@pytest.fixture
def bob() -> bytes:
    return new_actor(SWARM, AGENT, "two")


@pytest.fixture
def base(alice: bytes) -> MemoryDoc:
    doc, _ = MemoryDoc().apply(create_change(alice))
    return doc


# -- identities ----------------------------------------------------------------------------


def test_new_actor_starts_with_the_instance_tag_and_is_fresh_per_call() -> None:
    first = new_actor(SWARM, AGENT, "one")
    second = new_actor(SWARM, AGENT, "one")
    assert len(first) == 16
    assert first[:8] == second[:8] == instance_tag(SWARM, AGENT, "one")
    assert first != second


def test_instance_tag_differs_between_instances_agents_and_swarms() -> None:
    tags = {
        instance_tag(SWARM, AGENT, "one"),
        instance_tag(SWARM, AGENT, "two"),
        instance_tag(SWARM, "critic", "one"),
        instance_tag("swarm-2", AGENT, "one"),
    }
    assert len(tags) == 4
    assert all(len(t) == 8 for t in tags)


# -- authoring -----------------------------------------------------------------------------


def test_empty_doc_has_no_state_and_no_heads() -> None:
    doc = MemoryDoc()
    assert doc.empty
    assert doc.state() is None
    assert doc.heads() == []


def test_create_produces_the_expected_state(alice: bytes) -> None:
    change = create_change(
        alice,
        content="deploys on friday",
        kind="rule",
        tags=("ops", "deploy"),
        importance=0.8,
        private=True,
    )
    doc, new = MemoryDoc().apply(change)

    assert doc.state() == MemoryState(
        id=MID,
        content="deploys on friday",
        kind="rule",
        tags=("deploy", "ops"),
        importance=0.8,
        recall_count=0,
        agent=AGENT,
        instance="one",
        private=True,
        created_at=CREATED,
        forgotten=False,
        forgotten_reason=None,
        recall={},
    )
    assert [(c.actor, c.seq, c.deps) for c in new] == [(alice.hex(), 1, ())]
    assert doc.heads() == [new[0].hash]
    assert doc.has_change(new[0].hash)


def test_author_saved_doc_equals_base_with_the_change_applied(
    base: MemoryDoc, alice: bytes
) -> None:
    change, writer_doc = edit(base, alice, lambda e: e.set_content("changed"))
    applied, _ = base.apply(change)
    assert snapshot(writer_doc) == snapshot(applied)


def test_update_sets_content_importance_and_tags(base: MemoryDoc, alice: bytes) -> None:
    def change_all(e: Editor) -> None:
        e.set_content("the build uses uv and ruff")
        e.set_importance(0.9)
        e.add_tag("lint")
        e.remove_tag("build")

    change, _ = edit(base, alice, change_all)
    doc, new = base.apply(change)
    state = doc.state()

    assert state is not None
    assert state.content == "the build uses uv and ruff"
    assert state.importance == 0.9
    assert state.tags == ("lint",)
    assert (new[0].seq, new[0].deps) == (2, tuple(base.heads()))


def test_tags_are_reported_sorted_and_unique(base: MemoryDoc, alice: bytes) -> None:
    def add(e: Editor) -> None:
        e.add_tag("zeta")
        e.add_tag("alpha")
        e.add_tag("zeta")

    change, _ = edit(base, alice, add)
    state = base.apply(change)[0].state()
    assert state is not None
    assert state.tags == ("alpha", "build", "zeta")


def test_an_edit_that_changes_nothing_leaves_no_change(base: MemoryDoc, alice: bytes) -> None:
    assert edit_output(base, alice, lambda e: e.remove_tag("not-there")) == []
    assert edit_output(base, alice, lambda e: None) == []


def test_an_edit_that_changes_something_leaves_the_change_and_the_doc(
    base: MemoryDoc, alice: bytes
) -> None:
    out = edit_output(base, alice, lambda e: e.add_tag("new"))
    assert len(out) == 2
    doc, new = base.apply(out[0])
    assert len(new) == 1
    assert MemoryDoc.load(out[1]).heads() == doc.heads()


def test_reinforce_counts_per_writer_process(base: MemoryDoc, alice: bytes, bob: bytes) -> None:
    c1, doc = edit(base, alice, lambda e: e.reinforce())
    c2, doc = edit(doc, alice, lambda e: e.reinforce())
    c3, _ = edit(doc, bob, lambda e: e.reinforce())
    state = apply_all(base, [c1, c2, c3], strict=True).state()

    assert state is not None
    assert state.recall_count == 3
    assert state.recall == {alice.hex(): 2, bob.hex(): 1}


def test_forget_sets_the_tombstone_and_reason(base: MemoryDoc, alice: bytes) -> None:
    change, _ = edit(base, alice, lambda e: e.forget("superseded"))
    state = base.apply(change)[0].state()
    assert state is not None
    assert (state.forgotten, state.forgotten_reason) == (True, "superseded")


def test_forget_without_reason_leaves_reason_empty(base: MemoryDoc, alice: bytes) -> None:
    change, _ = edit(base, alice, lambda e: e.forget(None))
    state = base.apply(change)[0].state()
    assert state is not None
    assert (state.forgotten, state.forgotten_reason) == (True, None)


def test_state_as_dict_omits_recall_and_lists_tags(base: MemoryDoc) -> None:
    state = base.state()
    assert state is not None
    data = state.as_dict()
    assert "recall" not in data
    assert data["tags"] == ["build"]
    assert data["recall_count"] == 0
    assert state.text_fields() == {
        "content": "the build uses uv",
        "kind": "fact",
        "tags": ["build"],
    }


# -- apply -----------------------------------------------------------------------------------


def test_apply_does_not_mutate_the_receiver(base: MemoryDoc, alice: bytes) -> None:
    before_bytes, before = base.save(), snapshot(base)
    change, _ = edit(base, alice, lambda e: e.set_content("new content"))

    result, new = base.apply(change)

    assert new
    assert result is not base
    assert base.save() == before_bytes
    assert snapshot(base) == before
    assert result.heads() != base.heads()


def test_apply_duplicate_change_yields_no_new_changes(base: MemoryDoc, alice: bytes) -> None:
    change, _ = edit(base, alice, lambda e: e.set_content("once"))
    doc, first = base.apply(change)
    for strict in (True, False):
        again, second = doc.apply(change, strict=strict)
        assert len(first) == 1
        assert second == []
        assert snapshot(again) == snapshot(doc)


def test_apply_creation_change_twice_yields_no_new_changes(alice: bytes) -> None:
    change = create_change(alice)
    doc, _ = MemoryDoc().apply(change)
    assert doc.apply(change)[1] == []


def test_apply_with_missing_dependency_raises_in_strict_mode(base: MemoryDoc, alice: bytes) -> None:
    _, step1 = edit(base, alice, lambda e: e.set_content("v1"))
    c2, _ = edit(step1, alice, lambda e: e.set_content("v2"))

    with pytest.raises(ChangeError, match="depends on history"):
        base.apply(c2, strict=True)


def test_apply_holds_a_change_with_missing_dependency_in_lenient_mode(
    base: MemoryDoc, alice: bytes
) -> None:
    c1, step1 = edit(base, alice, lambda e: e.set_content("v1"))
    c2, step2 = edit(step1, alice, lambda e: e.set_content("v2"))

    waiting, new = base.apply(c2, strict=False)
    assert new == []
    assert snapshot(waiting) == snapshot(base)

    done, new = waiting.apply(c1, strict=False)
    assert [c.seq for c in new] == [2, 3]
    assert snapshot(done) == snapshot(step2)
    state = done.state()
    assert state is not None
    assert state.content == "v2"


def test_a_held_change_survives_save_and_load(base: MemoryDoc, alice: bytes) -> None:
    c1, step1 = edit(base, alice, lambda e: e.set_content("v1"))
    c2, step2 = edit(step1, alice, lambda e: e.set_content("v2"))

    waiting = MemoryDoc.load(base.apply(c2, strict=False)[0].save())
    done, _ = waiting.apply(c1)
    assert snapshot(done) == snapshot(step2)


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage",
        b"\x85\x6f\x4a\x83",  # the Automerge magic bytes and nothing else
        b"\x85\x6f\x4a\x83" + b"\x00" * 32,
        bytes(range(256)),
        os.urandom(64),
    ],
    ids=["text", "magic-only", "magic-then-zeros", "byte-range", "random"],
)
def test_apply_garbage_bytes_raises_change_error(base: MemoryDoc, garbage: bytes) -> None:
    for target in (MemoryDoc(), base):
        for strict in (True, False):
            with pytest.raises(ChangeError):
                target.apply(garbage, strict=strict)


def test_apply_truncated_change_raises_change_error(base: MemoryDoc, alice: bytes) -> None:
    change, _ = edit(base, alice, lambda e: e.set_content("truncate me"))
    for cut in (1, 8, len(change) // 2, len(change) - 1):
        with pytest.raises(ChangeError):
            base.apply(change[:cut])


def test_apply_corrupted_change_raises_change_error(base: MemoryDoc, alice: bytes) -> None:
    change, _ = edit(base, alice, lambda e: e.set_content("flip a byte"))
    corrupt = bytearray(change)
    corrupt[len(corrupt) // 2] ^= 0xFF
    with pytest.raises(ChangeError):
        base.apply(bytes(corrupt))


def test_load_garbage_raises_change_error() -> None:
    with pytest.raises(ChangeError):
        MemoryDoc.load(b"not a document")


def test_save_and_load_round_trip_state_and_heads(base: MemoryDoc) -> None:
    assert snapshot(MemoryDoc.load(base.save())) == snapshot(base)


@pytest.mark.parametrize(
    ("key", "fn", "message"),
    [
        ("content", lambda tx: tx.put(ROOT, "content", ScalarType.Int, 7), "content"),
        ("importance", lambda tx: tx.put(ROOT, "importance", ScalarType.Str, "high"), "importance"),
        ("private", lambda tx: tx.put(ROOT, "private", ScalarType.Str, "no"), "private"),
        ("tags", lambda tx: tx.put(ROOT, "tags", ScalarType.Str, "a,b"), "tags"),
        pytest.param(
            "content-map", lambda tx: tx.put_object(ROOT, "content", ObjType.Map), "content"
        ),
        ("id-deleted", lambda tx: tx.delete(ROOT, "id"), "id"),
    ],
)
def test_state_of_a_malformed_document_raises_change_error(
    base: MemoryDoc, alice: bytes, key: str, fn: Callable[[Transaction], None], message: str
) -> None:
    doc, _ = base.apply(hand_made(base, alice, fn))
    with pytest.raises(ChangeError, match=message):
        doc.state()


def test_state_rejects_a_negative_recall_count(base: MemoryDoc, alice: bytes) -> None:
    def negative(tx: Transaction) -> None:
        recall = tx.get(ROOT, "recall")
        assert recall is not None
        tx.put(recall[1], alice.hex(), ScalarType.Int, -3)

    doc, _ = base.apply(hand_made(base, alice, negative))
    with pytest.raises(ChangeError, match="recall"):
        doc.state()


# -- concurrency -----------------------------------------------------------------------------


def both_orders(base: MemoryDoc, x: bytes, y: bytes) -> tuple[MemoryDoc, MemoryDoc]:
    return apply_all(base, [x, y], strict=True), apply_all(base, [y, x], strict=True)


def test_concurrent_content_edits_converge_to_the_same_winner(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    ca, _ = edit(base, alice, lambda e: e.set_content("from alice"))
    cb, _ = edit(base, bob, lambda e: e.set_content("from bob"))
    xy, yx = both_orders(base, ca, cb)

    assert snapshot(xy) == snapshot(yx)
    state = xy.state()
    assert state is not None
    assert state.content in {"from alice", "from bob"}
    assert len(xy.heads()) == 2


def test_concurrent_importance_edits_converge(base: MemoryDoc, alice: bytes, bob: bytes) -> None:
    ca, _ = edit(base, alice, lambda e: e.set_importance(0.1))
    cb, _ = edit(base, bob, lambda e: e.set_importance(0.9))
    xy, yx = both_orders(base, ca, cb)
    assert snapshot(xy) == snapshot(yx)
    state = xy.state()
    assert state is not None
    assert state.importance in {0.1, 0.9}


def test_concurrent_tag_adds_on_both_sides_are_all_kept(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    def add_alice(e: Editor) -> None:
        e.add_tag("ci")
        e.add_tag("shared")

    def add_bob(e: Editor) -> None:
        e.add_tag("docs")
        e.add_tag("shared")

    ca, _ = edit(base, alice, add_alice)
    cb, _ = edit(base, bob, add_bob)
    xy, yx = both_orders(base, ca, cb)

    assert snapshot(xy) == snapshot(yx)
    state = xy.state()
    assert state is not None
    assert state.tags == ("build", "ci", "docs", "shared")


def test_re_adding_a_tag_is_a_real_change_for_add_wins(base: MemoryDoc, alice: bytes) -> None:
    assert len(edit_output(base, alice, lambda e: e.add_tag("build"))) == 2


def test_re_writing_a_value_already_there_produces_no_change(base: MemoryDoc, alice: bytes) -> None:
    # Automerge elides a put of the value a key already holds.
    assert edit_output(base, alice, lambda e: e.set_content("the build uses uv")) == []
    assert edit_output(base, alice, lambda e: e.set_importance(0.5)) == []


def test_concurrent_add_and_remove_of_the_same_tag_keeps_the_tag(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    carol = new_actor(SWARM, AGENT, "three")
    c_add_first, with_tag = edit(base, alice, lambda e: e.add_tag("ci"))
    # Bob removes the tag he saw; Carol concurrently adds it without having seen Alice's add.
    c_remove, _ = edit(with_tag, bob, lambda e: e.remove_tag("ci"))
    c_add, _ = edit(base, carol, lambda e: e.add_tag("ci"))

    results = [
        apply_all(base, order, strict=False)
        for order in (
            [c_add_first, c_remove, c_add],
            [c_add, c_add_first, c_remove],
            [c_remove, c_add, c_add_first],
        )
    ]
    assert snapshot(results[0]) == snapshot(results[1]) == snapshot(results[2])
    state = results[0].state()
    assert state is not None
    assert state.tags == ("build", "ci")


def test_concurrent_re_add_and_remove_of_an_existing_tag_keeps_the_tag(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    c_remove, _ = edit(base, alice, lambda e: e.remove_tag("build"))
    re_add = edit_output(base, bob, lambda e: e.add_tag("build"))[:1]
    doc = apply_all(base, [c_remove, *re_add], strict=True)
    state = doc.state()
    assert state is not None
    assert state.tags == ("build",)


def test_a_remove_that_saw_the_add_removes_the_tag(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    c_add, merged = edit(base, bob, lambda e: e.add_tag("ci"))
    c_remove, _ = edit(merged, alice, lambda e: e.remove_tag("ci"))
    state = apply_all(base, [c_add, c_remove], strict=True).state()
    assert state is not None
    assert state.tags == ("build",)


def test_concurrent_reinforce_by_two_actors_counts_two(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    ca, _ = edit(base, alice, lambda e: e.reinforce())
    cb, _ = edit(base, bob, lambda e: e.reinforce())
    xy, yx = both_orders(base, ca, cb)

    assert snapshot(xy) == snapshot(yx)
    state = xy.state()
    assert state is not None
    assert state.recall_count == 2


def test_concurrent_forget_and_update_keep_the_tombstone(
    base: MemoryDoc, alice: bytes, bob: bytes
) -> None:
    cf, _ = edit(base, alice, lambda e: e.forget("stale"))
    cu, _ = edit(base, bob, lambda e: e.set_content("still true"))
    xy, yx = both_orders(base, cf, cu)
    assert snapshot(xy) == snapshot(yx)
    state = xy.state()
    assert state is not None
    assert state.forgotten
    assert state.content == "still true"


# -- property: delivery order does not matter -------------------------------------------------

TAG_POOL = ("red", "green", "blue")

edit_ops = st.one_of(
    st.tuples(st.just("content"), st.sampled_from(["alpha", "beta", "gamma", "delta"])),
    st.tuples(st.just("add"), st.sampled_from(TAG_POOL)),
    st.tuples(st.just("remove"), st.sampled_from(TAG_POOL)),
    st.tuples(st.just("importance"), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.tuples(st.just("reinforce"), st.none()),
)


@st.composite
def swarm_plans(draw: st.DrawFn) -> dict[str, object]:
    base_tags = draw(st.lists(st.sampled_from(TAG_POOL), unique=True, max_size=2))
    writers = draw(st.integers(min_value=2, max_value=4))
    ops = [draw(st.lists(edit_ops, min_size=1, max_size=4)) for _ in range(writers)]
    # Optionally, before its k-th edit a writer merges another writer's fork as it is then.
    merges: list[tuple[int, int] | None] = []
    for i in range(writers):
        if draw(st.booleans()):
            source = draw(st.sampled_from([j for j in range(writers) if j != i]))
            at = draw(st.integers(min_value=0, max_value=len(ops[i]) - 1))
            merges.append((source, at))
        else:
            merges.append(None)
    # The interleaving of the writers' steps in time.
    turns = draw(st.permutations([i for i in range(writers) for _ in ops[i]]))
    return {"base_tags": base_tags, "ops": ops, "merges": merges, "turns": turns}


def _apply_op(
    doc: MemoryDoc, actor: bytes, op: tuple[str, object]
) -> tuple[bytes, MemoryDoc] | None:
    name, arg = op
    state = doc.state()
    assert state is not None
    # An edit that writes the value already there produces no change: skip it.
    if name == "content":
        if arg == state.content:
            return None
        return edit(doc, actor, lambda e: e.set_content(str(arg)))
    if name == "add":
        if arg in state.tags:
            return None
        return edit(doc, actor, lambda e: e.add_tag(str(arg)))
    if name == "remove":
        if arg not in state.tags:
            return None
        return edit(doc, actor, lambda e: e.remove_tag(str(arg)))
    if name == "importance":
        if arg == state.importance:
            return None
        return edit(doc, actor, lambda e: e.set_importance(float(arg)))  # type: ignore[arg-type]
    return edit(doc, actor, lambda e: e.reinforce())


def run_plan(plan: dict[str, object]) -> tuple[bytes, list[bytes], list[MemoryDoc]]:
    """Play the writers; return the creation change, every change in causal order, the forks."""
    creator = new_actor(SWARM, AGENT, "creator")
    c0 = create_change(creator, tags=tuple(plan["base_tags"]))  # type: ignore[arg-type]
    base, _ = MemoryDoc().apply(c0)
    ops: list[list[tuple[str, object]]] = plan["ops"]  # type: ignore[assignment]
    merges: list[tuple[int, int] | None] = plan["merges"]  # type: ignore[assignment]
    actors = [new_actor(SWARM, AGENT, f"writer-{i}") for i in range(len(ops))]
    forks = [base for _ in ops]
    done = [0 for _ in ops]
    authored: list[bytes] = []
    for i in plan["turns"]:  # type: ignore[attr-defined]
        merge = merges[i]
        if merge is not None and merge[1] == done[i]:
            forks[i], _ = forks[i].apply(forks[merge[0]].save(), strict=False)
        made = _apply_op(forks[i], actors[i], ops[i][done[i]])
        done[i] += 1
        if made is not None:
            change, forks[i] = made
            authored.append(change)
    return c0, authored, forks


@st.composite
def delivery_schedules(draw: st.DrawFn, changes: list[bytes]) -> list[bytes]:
    """A permutation, with some changes duplicated and some held back until the end."""
    order = list(draw(st.permutations(changes)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        if not changes:
            break
        dup = draw(st.sampled_from(changes))
        order.insert(draw(st.integers(min_value=0, max_value=len(order))), dup)
    held = draw(st.sets(st.integers(min_value=0, max_value=max(len(order) - 1, 0))))
    now = [c for k, c in enumerate(order) if k not in held]
    later = [c for k, c in enumerate(order) if k in held]
    return now + later


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=swarm_plans(), data=st.data())
def test_replicas_converge_whatever_the_delivery_order(
    plan: dict[str, object], data: st.DataObject
) -> None:
    c0, changes, forks = run_plan(plan)
    base, _ = MemoryDoc().apply(c0)

    reference = apply_all(base, changes, strict=True)  # authoring order is a causal order
    expected = snapshot(reference)
    assert expected[0] is not None

    # Every writer's fork merged together is the same document.
    merged = base
    for fork in forks:
        merged, _ = merged.apply(fork.save(), strict=False)
    assert snapshot(merged) == expected

    for _ in range(3):
        schedule = data.draw(delivery_schedules(changes))
        replica = base
        for change in schedule:
            replica, _ = replica.apply(change, strict=False)
            assert replica.state() is not None
        assert snapshot(replica) == expected

    # Merge of change sets: commutative, associative, idempotent.
    groups = [data.draw(st.integers(min_value=0, max_value=2)) for _ in changes]
    da, db, dc = (
        apply_all(base, [c for c, g in zip(changes, groups, strict=True) if g == k])
        for k in range(3)
    )

    def merge(x: MemoryDoc, y: MemoryDoc) -> MemoryDoc:
        return x.apply(y.save(), strict=False)[0]

    assert snapshot(merge(da, db)) == snapshot(merge(db, da))
    assert snapshot(merge(merge(da, db), dc)) == snapshot(merge(da, merge(db, dc)))
    assert snapshot(merge(merge(da, db), dc)) == expected
    assert snapshot(merge(da, da)) == snapshot(da)
    assert da.apply(da.save(), strict=False)[1] == []


def test_state_as_dict_lists_every_field_but_the_per_writer_counters() -> None:
    import dataclasses  # noqa: PLC0415

    from swarm.crdt import MemoryState  # noqa: PLC0415

    names = {f.name for f in dataclasses.fields(MemoryState)} - {"recall"}
    state = MemoryState(
        id="m", content="c", kind="fact", tags=("a",), importance=0.5, recall_count=2,
        agent="a", instance="i", private=False, created_at="t", recall={"x": 2},
    )  # fmt: skip
    assert set(state.as_dict()) == names
    assert state.as_dict()["tags"] == ["a"]
