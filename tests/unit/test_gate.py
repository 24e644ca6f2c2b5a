"""The gate's decision on real proposals: checks in order, typed errors, laws, records."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType, Transaction

from swarm.codec import encode
from swarm.crdt import Editor, MemoryDoc, author, new_actor
from swarm.errors import (
    ChangeError,
    ConfigError,
    IdentityError,
    LawViolation,
    Rejected,
    SchemaError,
    SizeLimitExceeded,
)
from swarm.events import (
    LawResult,
    LogRecord,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
    RejectionRecord,
)
from swarm.gate import Accepted, Duplicate, Gate, Held, Limits, MemoryHistory
from swarm.laws import LawSet, Outcome, PrivateDataLaw, Proposal, default_laws
from tests.unit.builders import hand_made

SWARM = "swarm-1"
MID = "01HZZZMEMORY0000000000001"
CREATED = "2024-05-01T12:00:00+00:00"
CONTENT = "the release train leaves on thursdays"


# -- writers and proposals -------------------------------------------------------------------------


@dataclass
class Writer:
    agent: str
    instance: str
    actor: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if not self.actor:
            self.actor = new_actor(SWARM, self.agent, self.instance)

    def event(self, cls: type[MemoryEvent], change: bytes, **extra: object) -> MemoryEvent:
        fields: dict[str, object] = {
            "swarm": SWARM,
            "agent": self.agent,
            "instance": self.instance,
            "actor": self.actor.hex(),
            "memory_id": MID,
            "change": change,
        }
        fields.update(extra)
        return cls(**fields)  # type: ignore[arg-type]


def create_change(
    writer: Writer,
    *,
    memory_id: str = MID,
    content: str = CONTENT,
    kind: str = "fact",
    tags: tuple[str, ...] = ("release",),
    importance: float = 0.5,
    private: bool = False,
    agent: str | None = None,
    instance: str | None = None,
    extra: Callable[[Editor], None] | None = None,
) -> bytes:
    with author(MemoryDoc(), writer.actor) as (edit, out):
        edit.create(
            memory_id=memory_id,
            content=content,
            kind=kind,
            tags=list(tags),
            importance=importance,
            agent=agent or writer.agent,
            instance=instance or writer.instance,
            private=private,
            created_at=CREATED,
        )
        if extra is not None:
            extra(edit)
    return out[0]


def edit(doc: MemoryDoc, writer: Writer, fn: Callable[[Editor], None]) -> bytes:
    with author(doc, writer.actor) as (editor, out):
        fn(editor)
    return out[0]


def recall_obj(tx: Transaction) -> bytes:
    found = tx.get(ROOT, "recall")
    assert found is not None
    return found[1]


def submit(
    gate: Gate,
    event: MemoryEvent,
    history: MemoryHistory,
    *,
    agent: str | None = None,
    instance: str | None = None,
) -> Accepted | Duplicate | Held:
    """Publish ``event`` on the inbox of ``agent@instance`` (its own by default)."""
    parsed = gate.parse(encode(event), agent or event.agent, instance or event.instance)
    return gate.judge(parsed, history)


def adopt(history: MemoryHistory, decision: Accepted | Duplicate | Held, seq: int) -> MemoryHistory:
    """What the gate service does once an accepted event is in the log."""
    assert isinstance(decision, Accepted)
    return MemoryHistory(
        doc=decision.doc, event_seqs={**history.event_seqs, decision.record.event.id: seq}
    )


@pytest.fixture
def gate() -> Gate:
    return Gate(SWARM, default_laws())


@pytest.fixture
def alice() -> Writer:
    return Writer("planner", "one")


@pytest.fixture
def alice2() -> Writer:
    """Another instance of the same agent."""
    return Writer("planner", "two")


@pytest.fixture
def critic() -> Writer:
    """A different agent."""
    return Writer("critic", "one")


@pytest.fixture
def created(gate: Gate, alice: Writer) -> tuple[MemoryEvent, MemoryHistory]:
    event = alice.event(MemoryRemembered, create_change(alice))
    return event, adopt(MemoryHistory(), submit(gate, event, MemoryHistory()), seq=7)


@pytest.fixture
def history(created: tuple[MemoryEvent, MemoryHistory]) -> MemoryHistory:
    return created[1]


def make_private(gate: Gate, alice: Writer) -> MemoryHistory:
    event = alice.event(MemoryRemembered, create_change(alice, private=True))
    return adopt(MemoryHistory(), submit(gate, event, MemoryHistory()), seq=1)


# -- accepted --------------------------------------------------------------------------------------


def test_judge_accepts_a_new_memory_with_the_law_set_version(gate: Gate, alice: Writer) -> None:
    event = alice.event(MemoryRemembered, create_change(alice))
    decision = submit(gate, event, MemoryHistory())

    assert isinstance(decision, Accepted)
    assert isinstance(decision.record, LogRecord)
    assert decision.record.event == event
    assert decision.record.verdict.law_set == gate.laws.version
    assert decision.record.verdict.results == (LawResult(law="no-private-data", verdict="pass"),)
    assert decision.record.verdict.flags == ()
    state = decision.doc.state()
    assert state is not None
    assert (state.id, state.content, state.agent, state.instance) == (
        MID,
        CONTENT,
        "planner",
        "one",
    )


def test_judge_accepts_update_reinforce_and_forget_in_turn(
    gate: Gate, alice: Writer, alice2: Writer, history: MemoryHistory
) -> None:
    steps: list[tuple[type[MemoryEvent], Writer, Callable[[Editor], None], dict[str, object]]] = [
        (MemoryUpdated, alice, lambda e: e.set_content("trains leave on fridays"), {}),
        (MemoryUpdated, alice2, lambda e: e.add_tag("schedule"), {}),
        (MemoryReinforced, alice, lambda e: e.reinforce(), {}),
        (MemoryReinforced, alice2, lambda e: e.reinforce(), {}),
        (MemoryForgotten, alice2, lambda e: e.forget("obsolete"), {"reason": "obsolete"}),
    ]
    for seq, (cls, writer, fn, extra) in enumerate(steps, start=10):
        event = writer.event(cls, edit(history.doc, writer, fn), **extra)
        decision = submit(gate, event, history)
        assert isinstance(decision, Accepted), cls
        history = adopt(history, decision, seq)

    state = history.doc.state()
    assert state is not None
    assert state.content == "trains leave on fridays"
    assert state.tags == ("release", "schedule")
    assert state.recall_count == 2
    assert (state.forgotten, state.forgotten_reason) == (True, "obsolete")


def test_judge_does_not_change_the_history_it_is_given(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    saved, seqs = history.doc.save(), dict(history.event_seqs)
    event = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.set_content("new")))
    submit(gate, event, history)
    assert history.doc.save() == saved
    assert history.event_seqs == seqs


def test_judge_accepts_a_concurrent_edit_from_an_older_version(
    gate: Gate, alice: Writer, alice2: Writer, history: MemoryHistory
) -> None:
    old_doc = history.doc
    first = alice.event(MemoryUpdated, edit(old_doc, alice, lambda e: e.set_content("first")))
    history = adopt(history, submit(gate, first, history), seq=8)
    second = alice2.event(MemoryUpdated, edit(old_doc, alice2, lambda e: e.add_tag("late")))
    decision = submit(gate, second, history)
    assert isinstance(decision, Accepted)
    state = decision.doc.state()
    assert state is not None
    assert (state.content, state.tags) == ("first", ("late", "release"))


# -- size and schema (parse) ---------------------------------------------------------------------


def test_parse_refuses_an_oversized_event_before_parsing_it() -> None:
    gate = Gate(SWARM, default_laws(), Limits(max_event_bytes=100))
    with pytest.raises(SizeLimitExceeded, match="101 bytes; the limit is 100") as info:
        gate.parse(b"{" * 101, "planner", "one")  # not even JSON: size is checked first
    assert info.value.check == "size"


def test_parse_reads_an_event_exactly_at_the_size_limit() -> None:
    gate = Gate(SWARM, default_laws(), Limits(max_event_bytes=100))
    with pytest.raises(SchemaError):
        gate.parse(b"{" * 100, "planner", "one")


def test_parse_refuses_a_real_event_over_a_small_limit(alice: Writer) -> None:
    raw = encode(alice.event(MemoryRemembered, create_change(alice)))
    with pytest.raises(SizeLimitExceeded):
        Gate(SWARM, default_laws(), Limits(max_event_bytes=len(raw) - 1)).parse(
            raw, "planner", "one"
        )
    assert Gate(SWARM, default_laws(), Limits(max_event_bytes=len(raw))).parse(
        raw, "planner", "one"
    )


def proposal_dict(writer: Writer) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        encode(writer.event(MemoryRemembered, create_change(writer)))
    )
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(type="memory.exploded"), r"unknown event type 'memory\.exploded'"),
        (lambda d: d.pop("type"), "unknown event type None"),
        (lambda d: d.update(schema_version=2), "unsupported schema_version 2"),
        (lambda d: d.update(schema_version=0), "unsupported schema_version 0"),
        (lambda d: d.update(schema_version="1"), "unsupported schema_version '1'"),
        (lambda d: d.pop("memory_id"), "memory_id: Field required"),
        (lambda d: d.pop("change"), "change: Field required"),
        (lambda d: d.update(actor="xyz"), "actor: String should match pattern"),
        (lambda d: d.update(agent="Not A Name"), "agent: String should match pattern"),
        (lambda d: d.update(memory_id="a b"), "memory_id: String should match pattern"),
        (lambda d: d.update(change="***"), "change"),
        (lambda d: d.update(surprise=True), "surprise: Extra inputs are not permitted"),
    ],
    ids=[
        "unknown-type",
        "no-type",
        "version-2",
        "version-0",
        "version-string",
        "no-memory-id",
        "no-change",
        "bad-actor",
        "bad-agent",
        "bad-memory-id",
        "bad-base64",
        "extra-field",
    ],
)
def test_parse_refuses_a_malformed_event_with_a_schema_error_naming_the_problem(
    gate: Gate, alice: Writer, mutate: Callable[[dict[str, object]], object], message: str
) -> None:
    data = proposal_dict(alice)
    mutate(data)
    with pytest.raises(SchemaError, match=message) as info:
        gate.parse(json.dumps(data).encode(), "planner", "one")
    assert info.value.check == "schema"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"memory.remembered"', "must be a JSON object"),
    ],
)
def test_parse_refuses_bytes_that_are_not_a_json_object(
    gate: Gate, raw: bytes, message: str
) -> None:
    with pytest.raises(SchemaError, match=message):
        gate.parse(raw, "planner", "one")


# -- identity --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "instance"), [("critic", "one"), ("planner", "two"), ("critic", "two")]
)
def test_parse_refuses_an_envelope_that_differs_from_the_inbox_subject(
    gate: Gate, alice: Writer, agent: str, instance: str
) -> None:
    raw = encode(alice.event(MemoryRemembered, create_change(alice)))
    with pytest.raises(IdentityError, match="may only write as itself") as info:
        gate.parse(raw, agent, instance)
    assert info.value.check == "identity"


def test_parse_refuses_an_event_for_another_swarm(alice: Writer) -> None:
    raw = encode(alice.event(MemoryRemembered, create_change(alice)))
    with pytest.raises(IdentityError, match="swarm"):
        Gate("other-swarm", default_laws()).parse(raw, "planner", "one")


@pytest.mark.parametrize(
    "actor",
    [
        new_actor(SWARM, "planner", "two"),
        new_actor(SWARM, "critic", "one"),
        new_actor("other-swarm", "planner", "one"),
        os.urandom(16),
    ],
    ids=["other-instance", "other-agent", "other-swarm", "random"],
)
def test_parse_refuses_an_actor_not_derived_from_the_instance(gate: Gate, actor: bytes) -> None:
    impostor = Writer("planner", "one", actor=actor)
    raw = encode(impostor.event(MemoryRemembered, create_change(impostor)))
    with pytest.raises(IdentityError, match="does not belong to planner@one"):
        gate.parse(raw, "planner", "one")


def test_judge_refuses_a_change_authored_by_another_actor_than_the_envelope(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    same_instance_other_process = Writer("planner", "one")
    change = edit(history.doc, same_instance_other_process, lambda e: e.set_content("sneaky"))
    event = alice.event(MemoryUpdated, change)
    with pytest.raises(IdentityError, match="made by actor"):
        submit(gate, event, history)


def test_judge_refuses_a_new_memory_naming_another_writer(gate: Gate, alice: Writer) -> None:
    event = alice.event(MemoryRemembered, create_change(alice, agent="critic"))
    with pytest.raises(IdentityError, match="its own writer"):
        submit(gate, event, MemoryHistory())


def test_judge_refuses_advancing_another_actors_recall_counter(
    gate: Gate, alice: Writer, alice2: Writer, history: MemoryHistory
) -> None:
    change = hand_made(
        history.doc,
        alice.actor,
        lambda tx: tx.put(recall_obj(tx), alice2.actor.hex(), ScalarType.Int, 1),
    )
    with pytest.raises(IdentityError, match="only advance its own recall counter"):
        submit(gate, alice.event(MemoryReinforced, change), history)


# -- change ----------------------------------------------------------------------------------------


def test_judge_refuses_remembering_an_existing_memory(
    gate: Gate, alice2: Writer, history: MemoryHistory
) -> None:
    event = alice2.event(MemoryRemembered, create_change(alice2))
    with pytest.raises(ChangeError, match="already exists"):
        submit(gate, event, history)


def test_judge_refuses_remembering_again_with_the_same_actor(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(MemoryRemembered, create_change(alice, content="a second first"))
    with pytest.raises(ChangeError):
        submit(gate, event, history)


def test_judge_refuses_updating_a_missing_memory(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.set_content("x")))
    with pytest.raises(ChangeError, match="depends on history"):
        submit(gate, event, MemoryHistory())


def test_judge_refuses_an_update_built_on_nothing(gate: Gate, alice: Writer) -> None:
    change = hand_made(
        MemoryDoc(), alice.actor, lambda tx: tx.put(ROOT, "content", ScalarType.Str, "orphan")
    )
    with pytest.raises(ChangeError):
        submit(gate, alice.event(MemoryUpdated, change), MemoryHistory())


def test_judge_refuses_an_update_after_forget(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    forget = alice.event(MemoryForgotten, edit(history.doc, alice, lambda e: e.forget(None)))
    history = adopt(history, submit(gate, forget, history), seq=8)
    event = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.set_content("back")))
    with pytest.raises(ChangeError, match="forgotten and cannot change"):
        submit(gate, event, history)


@pytest.mark.parametrize(
    "case",
    [
        ("agent", "critic", "'agent' is fixed"),
        ("instance", "two", "'instance' is fixed"),
        ("created_at", "2030-01-01T00:00:00+00:00", "'created_at' is fixed"),
        ("id", "01HZZZMEMORY0000000000002", "edits another memory"),
    ],
)
def test_judge_refuses_changing_a_fixed_field(
    gate: Gate, alice: Writer, history: MemoryHistory, case: tuple[str, str, str]
) -> None:
    name, value, message = case
    change = hand_made(
        history.doc, alice.actor, lambda tx: tx.put(ROOT, name, ScalarType.Str, value)
    )
    with pytest.raises(ChangeError, match=message):
        submit(gate, alice.event(MemoryUpdated, change), history)


def test_judge_refuses_making_a_memory_public(gate: Gate, alice: Writer) -> None:
    history = make_private(gate, alice)
    change = hand_made(
        history.doc, alice.actor, lambda tx: tx.put(ROOT, "private", ScalarType.Boolean, False)
    )
    with pytest.raises(ChangeError, match="'private' is fixed"):
        submit(gate, alice.event(MemoryUpdated, change), history)


def test_judge_refuses_a_change_to_another_memory_id(gate: Gate, alice: Writer) -> None:
    change = create_change(alice, memory_id="01HZZZMEMORY0000000000002")
    with pytest.raises(ChangeError, match="edits another memory"):
        submit(gate, alice.event(MemoryRemembered, change), MemoryHistory())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"importance": 1.5}, "importance must be between 0 and 1"),
        ({"importance": -0.1}, "importance must be between 0 and 1"),
        ({"content": ""}, "content must not be empty"),
        ({"content": "  \n\t "}, "content must not be empty"),
        ({"kind": "Not A Kind"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": "k" * 33}, "kind"),
        ({"tags": ("   ",)}, "tags must be"),
        ({"tags": ("t" * 65,)}, "tags must be"),
    ],
)
def test_judge_refuses_a_malformed_new_memory(
    gate: Gate, alice: Writer, overrides: dict[str, object], message: str
) -> None:
    event = alice.event(MemoryRemembered, create_change(alice, **overrides))  # type: ignore[arg-type]
    with pytest.raises(ChangeError, match=message):
        submit(gate, event, MemoryHistory())


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda e: e.set_importance(2.0), "importance"),
        (lambda e: e.set_content(" "), "content must not be empty"),
    ],
)
def test_judge_refuses_an_update_that_breaks_the_shape(
    gate: Gate, alice: Writer, history: MemoryHistory, fn: Callable[[Editor], None], message: str
) -> None:
    with pytest.raises(ChangeError, match=message):
        submit(gate, alice.event(MemoryUpdated, edit(history.doc, alice, fn)), history)


def test_judge_accepts_the_boundary_values_of_importance(gate: Gate, alice: Writer) -> None:
    for importance in (0.0, 1.0):
        event = alice.event(MemoryRemembered, create_change(alice, importance=importance))
        assert isinstance(submit(gate, event, MemoryHistory()), Accepted)


def test_judge_enforces_the_configured_content_and_tag_limits(alice: Writer) -> None:
    gate = Gate(SWARM, default_laws(), Limits(max_content_chars=10, max_tags=2, max_tag_chars=3))
    cases: list[tuple[dict[str, object], type[Rejected]]] = [
        ({"content": "x" * 11}, SizeLimitExceeded),
        ({"content": "short", "tags": ("a", "b", "c")}, ChangeError),
        ({"content": "short", "tags": ("abcd",)}, ChangeError),
    ]
    for overrides, error in cases:
        event = alice.event(MemoryRemembered, create_change(alice, **overrides))  # type: ignore[arg-type]
        with pytest.raises(error):
            submit(gate, event, MemoryHistory())
    ok = alice.event(MemoryRemembered, create_change(alice, content="x" * 10, tags=("ab", "c")))
    assert isinstance(submit(gate, ok, MemoryHistory()), Accepted)


def test_judge_refuses_a_reinforce_that_also_edits_content(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    def both(e: Editor) -> None:
        e.reinforce()
        e.set_content("and a quiet rewrite")

    with pytest.raises(ChangeError, match="only add one to the recall count"):
        submit(gate, alice.event(MemoryReinforced, edit(history.doc, alice, both)), history)


def test_judge_refuses_a_reinforce_by_more_than_one(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    def twice(e: Editor) -> None:
        e.reinforce()
        e.reinforce()

    with pytest.raises(ChangeError, match="add exactly one"):
        submit(gate, alice.event(MemoryReinforced, edit(history.doc, alice, twice)), history)


def test_judge_refuses_a_reinforce_that_changes_nothing_countable(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(MemoryReinforced, edit(history.doc, alice, lambda e: e.add_tag("x")))
    with pytest.raises(ChangeError, match="add exactly one"):
        submit(gate, event, history)


def test_judge_refuses_shrinking_a_recall_counter(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    for seq in (8, 9):
        event = alice.event(MemoryReinforced, edit(history.doc, alice, lambda e: e.reinforce()))
        history = adopt(history, submit(gate, event, history), seq)
    change = hand_made(
        history.doc,
        alice.actor,
        lambda tx: tx.put(recall_obj(tx), alice.actor.hex(), ScalarType.Int, 1),
    )
    with pytest.raises(
        ChangeError, match=r"only memory.reinforced may change the recall count|add exactly one"
    ):
        submit(gate, alice.event(MemoryUpdated, change), history)


def test_judge_refuses_an_update_that_forgets(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.forget(None)))
    with pytest.raises(ChangeError, match=r"only memory\.forgotten may forget"):
        submit(gate, event, history)


def test_judge_refuses_a_forget_event_without_the_tombstone(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(MemoryForgotten, edit(history.doc, alice, lambda e: e.set_content("z")))
    with pytest.raises(ChangeError, match="must set the tombstone"):
        submit(gate, event, history)


def test_judge_refuses_a_new_memory_that_starts_forgotten(gate: Gate, alice: Writer) -> None:
    change = create_change(alice, extra=lambda e: e.forget(None))
    with pytest.raises(ChangeError, match="starts unforgotten"):
        submit(gate, alice.event(MemoryRemembered, change), MemoryHistory())


@pytest.mark.parametrize("garbage", [b"garbage", b"\x85\x6f\x4a\x83" + b"\x01" * 40])
def test_judge_refuses_garbage_change_bytes(
    gate: Gate, alice: Writer, history: MemoryHistory, garbage: bytes
) -> None:
    with pytest.raises(ChangeError):
        submit(gate, alice.event(MemoryUpdated, garbage), history)


def test_judge_refuses_empty_change_bytes(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    with pytest.raises(ChangeError):
        submit(gate, alice.event(MemoryUpdated, b""), history)


def test_judge_refuses_a_change_that_makes_a_field_an_object(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    change = hand_made(
        history.doc, alice.actor, lambda tx: tx.put_object(ROOT, "content", ObjType.Map)
    )
    with pytest.raises(ChangeError):
        submit(gate, alice.event(MemoryUpdated, change), history)


def test_judge_refuses_change_bytes_holding_two_changes(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    first = edit(history.doc, alice, lambda e: e.set_content("one"))
    step, _ = history.doc.apply(first)
    second = edit(step, alice, lambda e: e.set_content("two"))
    with pytest.raises(Rejected):
        submit(gate, alice.event(MemoryUpdated, first + second), history)


def test_judge_refuses_an_update_that_inflates_the_recall_count(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    def inflate(e: Editor) -> None:
        e.set_content("an innocent looking update")
        for _ in range(5):
            e.reinforce()

    with pytest.raises(Rejected):
        submit(gate, alice.event(MemoryUpdated, edit(history.doc, alice, inflate)), history)


def test_judge_refuses_a_new_memory_with_a_preset_recall_counter(
    gate: Gate, alice: Writer, alice2: Writer
) -> None:
    def preset(tx: Transaction) -> None:
        tx.put(recall_obj(tx), alice2.actor.hex(), ScalarType.Int, 1000)

    # One change by Alice's actor: a well-formed new memory plus a preset recall counter.
    raw = Document(actor_id=alice.actor)
    with raw.transaction() as tx:
        for key, kind, value in [
            ("id", ScalarType.Str, MID),
            ("agent", ScalarType.Str, "planner"),
            ("instance", ScalarType.Str, "one"),
            ("created_at", ScalarType.Str, CREATED),
            ("private", ScalarType.Boolean, False),
            ("content", ScalarType.Str, CONTENT),
            ("kind", ScalarType.Str, "fact"),
            ("importance", ScalarType.F64, 0.5),
            ("forgotten", ScalarType.Boolean, False),
        ]:
            tx.put(ROOT, key, kind, value)
        tx.put_object(ROOT, "tags", ObjType.Map)
        tx.put_object(ROOT, "recall", ObjType.Map)
        preset(tx)
    (change,) = raw.get_changes([])
    with pytest.raises(Rejected):
        submit(gate, alice.event(MemoryRemembered, change.bytes), MemoryHistory())


# -- scope -----------------------------------------------------------------------------------------


def test_judge_refuses_writing_to_another_agents_private_memory(
    gate: Gate, alice: Writer, critic: Writer
) -> None:
    history = make_private(gate, alice)
    event = critic.event(MemoryUpdated, edit(history.doc, critic, lambda e: e.add_tag("mine")))
    with pytest.raises(Rejected) as info:
        submit(gate, event, history)
    assert type(info.value) is Rejected
    assert info.value.check == "scope"
    assert "private to agent planner" in info.value.reason


def test_judge_refuses_reinforcing_another_agents_private_memory(
    gate: Gate, alice: Writer, critic: Writer
) -> None:
    history = make_private(gate, alice)
    event = critic.event(MemoryReinforced, edit(history.doc, critic, lambda e: e.reinforce()))
    with pytest.raises(Rejected) as info:
        submit(gate, event, history)
    assert info.value.check == "scope"


def test_judge_lets_another_instance_of_the_owner_write_a_private_memory(
    gate: Gate, alice: Writer, alice2: Writer
) -> None:
    history = make_private(gate, alice)
    event = alice2.event(MemoryUpdated, edit(history.doc, alice2, lambda e: e.add_tag("ok")))
    assert isinstance(submit(gate, event, history), Accepted)


def test_judge_lets_another_agent_write_a_shared_memory(
    gate: Gate, critic: Writer, history: MemoryHistory
) -> None:
    event = critic.event(MemoryUpdated, edit(history.doc, critic, lambda e: e.add_tag("seen")))
    decision = submit(gate, event, history)
    assert isinstance(decision, Accepted)
    state = decision.doc.state()
    assert state is not None
    assert state.agent == "planner"  # the owner stays the creator


# -- laws ------------------------------------------------------------------------------------------

SECRETS = {
    "email": "alice.smith@example.com",
    "phone": "+1 415-555-0123",
    "card": "4111 1111 1111 1111",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_judge_rejects_private_data_in_content_without_echoing_it(
    gate: Gate, alice: Writer, kind: str
) -> None:
    secret = SECRETS[kind]
    event = alice.event(MemoryRemembered, create_change(alice, content=f"reach it at {secret} ok"))
    with pytest.raises(LawViolation) as info:
        submit(gate, event, MemoryHistory())
    err = info.value
    assert (err.law, err.check) == ("no-private-data", "no-private-data")
    assert kind in err.reason
    assert err.where is not None
    assert "content" in err.where
    for text in (err.reason, err.where, str(err)):
        assert secret not in text
        assert secret.split()[-1] not in text


def test_judge_rejects_private_data_added_by_an_update(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    event = alice.event(
        MemoryUpdated, edit(history.doc, alice, lambda e: e.add_tag(SECRETS["email"]))
    )
    with pytest.raises(LawViolation) as info:
        submit(gate, event, history)
    assert info.value.where is not None
    assert "tags" in info.value.where


def test_judge_rejects_a_phone_split_across_content_and_a_tag(gate: Gate, alice: Writer) -> None:
    change = create_change(alice, content="call 415-555", tags=("0123",))
    with pytest.raises(LawViolation) as info:
        submit(gate, alice.event(MemoryRemembered, change), MemoryHistory())
    assert info.value.law == "no-private-data"
    assert info.value.where is not None
    assert "content+tags" in info.value.where
    assert "415" not in info.value.reason + info.value.where


def test_judge_rejects_a_card_split_across_content_and_a_tag(alice: Writer) -> None:
    gate = Gate(SWARM, LawSet([PrivateDataLaw(kinds=("card",))]))
    halves = ("paid with 4111 1111", ("1111 1111",))
    # Each half alone is not a card.
    alone = alice.event(MemoryRemembered, create_change(alice, content=halves[0]))
    assert isinstance(submit(gate, alone, MemoryHistory()), Accepted)
    event = alice.event(MemoryRemembered, create_change(alice, content=halves[0], tags=halves[1]))
    with pytest.raises(LawViolation) as info:
        submit(gate, event, MemoryHistory())
    assert info.value.where is not None
    assert "card" in info.value.where
    assert "content+tags" in info.value.where
    assert "4111" not in info.value.reason + info.value.where


def test_judge_lets_a_law_limited_to_some_kinds_pass_the_others(alice: Writer) -> None:
    gate = Gate(SWARM, LawSet([PrivateDataLaw(kinds=("card",))]))
    event = alice.event(MemoryRemembered, create_change(alice, content=SECRETS["email"]))
    assert isinstance(submit(gate, event, MemoryHistory()), Accepted)


def test_judge_rejects_private_data_in_a_forget_reason(
    gate: Gate, alice: Writer, history: MemoryHistory
) -> None:
    reason = f"ask {SECRETS['email']}"
    event = alice.event(
        MemoryForgotten, edit(history.doc, alice, lambda e: e.forget(reason)), reason=reason
    )
    with pytest.raises(LawViolation):
        submit(gate, event, history)


@dataclass(frozen=True)
class WordLaw:
    """A tiny custom law: violated when the content contains a word."""

    id: str
    word: str
    action: str = "flag"
    description: str = "mentions a watched word"
    calls: list[str] = field(default_factory=list, compare=False, hash=False)

    def check(self, proposal: Proposal) -> Outcome:
        self.calls.append(proposal.event.id)
        if self.word in proposal.after.content:
            return Outcome(ok=False, reason=f"mentions {self.word}", where="content")
        return Outcome.passed()

    def params(self) -> dict[str, object]:
        return {"word": self.word}


def test_judge_accepts_a_flagged_event_with_the_flag_in_the_verdict(alice: Writer) -> None:
    laws = LawSet([PrivateDataLaw(), WordLaw("watch-deploys", "release")])
    gate = Gate(SWARM, laws)
    decision = submit(gate, alice.event(MemoryRemembered, create_change(alice)), MemoryHistory())

    assert isinstance(decision, Accepted)
    verdict = decision.record.verdict
    assert verdict.law_set == laws.version
    assert verdict.results == (
        LawResult(law="no-private-data", verdict="pass"),
        LawResult(law="watch-deploys", verdict="flag", reason="mentions release"),
    )
    assert verdict.flags == (verdict.results[1],)


def test_judge_runs_laws_in_order_and_stops_at_the_first_rejection(alice: Writer) -> None:
    flagger = WordLaw("first-flag", "release")
    rejecter = WordLaw("then-reject", "release", action="reject")
    never = WordLaw("never-run", "release")
    gate = Gate(SWARM, LawSet([flagger, rejecter, never]))
    event = alice.event(MemoryRemembered, create_change(alice))

    with pytest.raises(LawViolation) as info:
        submit(gate, event, MemoryHistory())
    assert info.value.law == "then-reject"
    assert info.value.reason == "mentions release"
    assert info.value.where == "content"
    assert flagger.calls == [event.id]
    assert rejecter.calls == [event.id]
    assert never.calls == []


def test_law_set_refuses_duplicate_ids_and_unknown_actions() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        LawSet([WordLaw("same", "a"), WordLaw("same", "b")])
    with pytest.raises(ConfigError, match="not supported"):
        LawSet([WordLaw("approve", "a", action="require_approval")])


def test_law_set_version_depends_on_laws_order_params_and_action() -> None:
    def version(*laws: WordLaw) -> str:
        return LawSet(laws).version

    a, b = WordLaw("a", "x"), WordLaw("b", "y")
    assert version(a, b) == version(WordLaw("a", "x"), WordLaw("b", "y"))
    assert version(a, b).startswith("2:")
    assert LawSet().version.startswith("0:")
    others = {
        version(b, a),
        version(a),
        version(a, WordLaw("b", "z")),
        version(a, WordLaw("b", "y", action="reject")),
        version(a, WordLaw("c", "y")),
    }
    assert version(a, b) not in others
    assert len(others) == 5
    assert default_laws().version == LawSet([PrivateDataLaw()]).version
    assert PrivateDataLaw(kinds=("card",)) != PrivateDataLaw()
    assert LawSet([PrivateDataLaw(kinds=("card",))]).version != default_laws().version


# -- retries ---------------------------------------------------------------------------------------


def test_judge_answers_a_retry_of_an_accepted_event_with_its_stored_seq(
    gate: Gate, created: tuple[MemoryEvent, MemoryHistory], alice: Writer
) -> None:
    event, history = created
    later = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.set_content("later")))
    history = adopt(history, submit(gate, later, history), seq=8)

    decision = submit(gate, event, history)
    assert isinstance(decision, Duplicate)
    assert decision.seq == 7
    assert decision.event == event
    assert isinstance(submit(gate, later, history), Duplicate)


def test_judge_refuses_the_same_change_under_a_new_event_id(
    gate: Gate, created: tuple[MemoryEvent, MemoryHistory]
) -> None:
    _, history = created
    alice = Writer("planner", "one")
    update = alice.event(MemoryUpdated, edit(history.doc, alice, lambda e: e.set_content("new")))
    history = adopt(history, submit(gate, update, history), seq=8)
    again = update.model_copy(update={"id": "01HZZZRETRY00000000000001"})
    with pytest.raises(ChangeError, match="already in the log under another event id"):
        submit(gate, again, history)


def test_judge_refuses_a_second_creation_before_applying_it(
    gate: Gate, created: tuple[MemoryEvent, MemoryHistory]
) -> None:
    event, history = created
    again = event.model_copy(update={"id": "01HZZZRETRY00000000000001"})
    with pytest.raises(ChangeError, match="already exists"):
        submit(gate, again, history)


# -- rejection records -----------------------------------------------------------------------------


def refusal(gate: Gate, event: MemoryEvent, history: MemoryHistory) -> Rejected:
    with pytest.raises(Rejected) as info:
        submit(gate, event, history)
    return info.value


def test_rejection_record_of_a_law_violation_names_the_law_but_not_the_content(
    gate: Gate, alice: Writer
) -> None:
    content = f"ping {SECRETS['email']} about the launch"
    event = alice.event(MemoryRemembered, create_change(alice, content=content))
    err = refusal(gate, event, MemoryHistory())
    record = Gate.rejection(err, event=event, event_id=event.id, agent="planner", instance="one")

    assert isinstance(record, RejectionRecord)
    assert (record.event_id, record.type, record.memory_id) == (event.id, "memory.remembered", MID)
    assert (record.agent, record.instance) == ("planner", "one")
    assert (record.check, record.kind) == ("no-private-data", "law")
    assert record.where is not None
    assert "email" in record.where
    raw = encode(record).decode()
    assert SECRETS["email"] not in raw
    assert "launch" not in raw
    assert "change" not in json.loads(raw)


def test_rejection_records_never_contain_the_content(
    gate: Gate, alice: Writer, critic: Writer, history: MemoryHistory
) -> None:
    marker = "zanzibar-quokka-marmalade"
    private = make_private(gate, alice)
    cases: list[tuple[MemoryEvent, MemoryHistory]] = [
        (alice.event(MemoryRemembered, create_change(alice, content=marker)), history),
        (
            alice.event(MemoryRemembered, create_change(alice, content=marker, importance=9)),
            MemoryHistory(),
        ),
        (
            alice.event(
                MemoryRemembered, create_change(alice, content=f"{marker} {SECRETS['card']}")
            ),
            MemoryHistory(),
        ),
        (
            critic.event(MemoryUpdated, edit(private.doc, critic, lambda e: e.set_content(marker))),
            private,
        ),
        (
            alice.event(
                MemoryReinforced,
                edit(history.doc, alice, lambda e: (e.reinforce(), e.set_content(marker))),
            ),
            history,
        ),
    ]
    checks = set()
    for event, hist in cases:
        err = refusal(gate, event, hist)
        record = Gate.rejection(
            err, event=event, event_id=event.id, agent=event.agent, instance=event.instance
        )
        checks.add(record.check)
        assert marker not in encode(record).decode()
    assert checks == {"change", "scope", "no-private-data"}


def test_rejection_record_of_a_parse_failure_uses_the_given_event_id(gate: Gate) -> None:
    with pytest.raises(SchemaError) as info:
        gate.parse(b"{oops", "planner", "one")
    record = Gate.rejection(
        info.value, event=None, event_id="msg-id-0001", agent="planner", instance="one"
    )
    assert (record.event_id, record.type, record.memory_id) == ("msg-id-0001", None, None)
    assert (record.check, record.kind, record.where) == ("schema", "check", None)
    assert record.reason == info.value.reason


def test_rejection_record_of_a_bad_kind_does_not_echo_the_kind(gate: Gate, alice: Writer) -> None:
    event = alice.event(MemoryRemembered, create_change(alice, kind=SECRETS["email"]))
    err = refusal(gate, event, MemoryHistory())
    record = Gate.rejection(err, event=event, event_id=event.id, agent="planner", instance="one")
    assert SECRETS["email"] not in encode(record).decode()


def test_rate_limiter_allows_the_burst_then_the_sustained_rate() -> None:
    from swarm.gate import RateLimiter  # noqa: PLC0415

    limiter = RateLimiter(rate=10.0, burst=5.0)
    key = ("brad", "cloud")
    assert [limiter.allow(key, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow(("ann", "desk"), 0.0)  # buckets are per instance
    assert not limiter.allow(key, 0.05)  # half a token refilled
    assert limiter.allow(key, 0.1)  # one token after 0.1 s at 10/s
    assert not limiter.allow(key, 0.1)


# -- require_approval: held, then accepted as approved ------------------------------------------


def test_judge_holds_an_event_a_require_approval_law_asks_about(alice: Writer) -> None:
    ask = WordLaw("ask-first", "release", action="require_approval")
    laws = LawSet([PrivateDataLaw(), ask], allow_approval=True)
    gate = Gate(SWARM, laws)
    event = alice.event(MemoryRemembered, create_change(alice))

    decision = submit(gate, event, MemoryHistory())

    assert isinstance(decision, Held)
    assert decision.event == event
    assert decision.laws == (
        LawResult(law="ask-first", verdict="pending", reason="mentions release"),
    )
    assert decision.verdict.results == (LawResult(law="no-private-data", verdict="pass"),)
    assert decision.verdict.law_set == laws.version


def test_judge_accepts_a_held_event_once_approved_naming_the_approver(alice: Writer) -> None:
    laws = LawSet(
        [PrivateDataLaw(), WordLaw("ask-first", "release", action="require_approval")],
        allow_approval=True,
    )
    gate = Gate(SWARM, laws)
    event = alice.event(MemoryRemembered, create_change(alice))

    decision = gate.judge(event, MemoryHistory(), approved_by="_admin")

    assert isinstance(decision, Accepted)
    verdict = decision.record.verdict
    assert verdict.approved_by == "_admin"
    assert (
        LawResult(law="ask-first", verdict="pending", reason="mentions release") in verdict.results
    )
    assert decision.doc.state() is not None


def test_approval_does_not_override_a_rejecting_law(alice: Writer) -> None:
    laws = LawSet(
        [PrivateDataLaw(), WordLaw("ask-first", "mail", action="require_approval")],
        allow_approval=True,
    )
    gate = Gate(SWARM, laws)
    event = alice.event(MemoryRemembered, create_change(alice, content="mail me at a@b.example"))

    with pytest.raises(LawViolation) as info:
        gate.judge(event, MemoryHistory(), approved_by="_admin")
    assert info.value.law == "no-private-data"


def test_approval_without_a_law_asking_records_no_approver(alice: Writer) -> None:
    gate = Gate(SWARM, default_laws())
    decision = gate.judge(
        alice.event(MemoryRemembered, create_change(alice)), MemoryHistory(), approved_by="x"
    )
    assert isinstance(decision, Accepted)
    assert decision.record.verdict.approved_by is None
