"""The wire format: events, log and rejection records, ids, subjects."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from swarm.codec import decode_log_record, decode_proposal, decode_rejection, encode
from swarm.crdt import MemoryDoc, author, new_actor
from swarm.errors import (
    ChangeError,
    ConfigError,
    IdentityError,
    LawViolation,
    Rejected,
    SchemaError,
    SizeLimitExceeded,
    rejection_from_wire,
)
from swarm.events import (
    EVENT_TYPES,
    LawResult,
    LogRecord,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
    Receipt,
    RejectionRecord,
    Verdict,
    new_id,
)
from swarm.subjects import Subjects

SWARM = "swarm-1"
MID = "01HZZZMEMORY0000000000001"
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
ACTOR = new_actor(SWARM, "planner", "one")


def a_change() -> bytes:
    with author(MemoryDoc(), ACTOR) as (edit, out):
        edit.create(
            memory_id=MID,
            content="c",
            kind="fact",
            tags=[],
            importance=0.5,
            agent="planner",
            instance="one",
            private=False,
            created_at="2024-05-01T12:00:00+00:00",
        )
    return out[0]


CHANGE = a_change()


def make(cls: type[MemoryEvent], **extra: object) -> MemoryEvent:
    fields: dict[str, object] = {
        "swarm": SWARM,
        "agent": "planner",
        "instance": "one",
        "actor": ACTOR.hex(),
        "memory_id": MID,
        "change": CHANGE,
    }
    fields.update(extra)
    return cls(**fields)  # type: ignore[arg-type]


ALL_EVENTS = [
    make(MemoryRemembered),
    make(MemoryUpdated),
    make(MemoryReinforced),
    make(MemoryForgotten),
    make(MemoryForgotten, reason="superseded by a newer fact"),
]


# -- events ----------------------------------------------------------------------------------------


def test_event_types_map_every_wire_name_to_its_class() -> None:
    assert {
        "memory.remembered": MemoryRemembered,
        "memory.updated": MemoryUpdated,
        "memory.reinforced": MemoryReinforced,
        "memory.forgotten": MemoryForgotten,
    } == EVENT_TYPES
    for name, cls in EVENT_TYPES.items():
        assert make(cls).type == name == cls.type_name


def test_new_event_gets_defaults_for_version_id_and_time() -> None:
    before = datetime.now(UTC)
    event = make(MemoryUpdated)
    assert event.schema_version == 1
    assert len(event.id) == 26
    assert event.at.tzinfo is not None
    assert before <= event.at <= datetime.now(UTC)
    assert make(MemoryUpdated).id != event.id


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: f"{e.type}-{getattr(e, 'reason', '')}")
def test_encode_then_decode_proposal_round_trips_every_event_type(event: MemoryEvent) -> None:
    decoded = decode_proposal(encode(event))
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded.change == CHANGE


def test_encode_writes_the_change_as_base64_in_json() -> None:
    payload = bytes(range(256))
    data = json.loads(encode(make(MemoryUpdated, change=payload)))
    assert isinstance(data["change"], str)
    # pydantic writes the URL-safe alphabet ("-", "_") with padding.
    assert base64.urlsafe_b64decode(data["change"]) == payload
    assert data["type"] == "memory.updated"
    assert data["schema_version"] == 1


def test_decode_proposal_accepts_the_standard_base64_alphabet_too() -> None:
    payload = bytes(range(256))
    data = json.loads(encode(make(MemoryUpdated)))
    data["change"] = base64.b64encode(payload).decode()
    assert "+" in data["change"]
    assert "/" in data["change"]
    assert decode_proposal(json.dumps(data).encode()).change == payload


def test_events_are_frozen() -> None:
    event = make(MemoryUpdated)
    with pytest.raises(ValidationError, match="frozen"):
        event.memory_id = "01HZZZMEMORY0000000000002"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        event.change = b"other"  # type: ignore[misc]
    assert event.memory_id == MID


def test_records_are_frozen() -> None:
    record = LogRecord(event=make(MemoryUpdated), verdict=Verdict(law_set="0:abc"))
    with pytest.raises(ValidationError, match="frozen"):
        record.verdict = Verdict(law_set="1:def")  # type: ignore[misc]


def test_events_forbid_extra_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        make(MemoryUpdated, color="blue")
    data = json.loads(encode(make(MemoryRemembered)))
    data["color"] = "blue"
    with pytest.raises(SchemaError, match="color: Extra inputs are not permitted"):
        decode_proposal(json.dumps(data).encode())


UNION_REASON = (
    "decode_proposal validates against a plain (not discriminated) union, so errors are "
    "collected from all four event models and the first one reported is MemoryRemembered's: "
    'for any other type the message names the wrong model (e.g. "MemoryRemembered.type: '
    "Input should be 'memory.remembered' (and 6 more)\") instead of the real problem"
)


@pytest.mark.parametrize("cls", [MemoryUpdated, MemoryReinforced, MemoryForgotten])
def test_decode_proposal_names_the_extra_field_of_any_event_type(cls: type[MemoryEvent]) -> None:
    data = json.loads(encode(make(cls)))
    data["color"] = "blue"
    with pytest.raises(SchemaError, match="color") as info:
        decode_proposal(json.dumps(data).encode())
    assert "MemoryRemembered" not in info.value.reason


def test_decode_proposal_reports_one_problem_of_an_update_as_one() -> None:
    data = json.loads(encode(make(MemoryUpdated)))
    data["actor"] = "not-hex"
    with pytest.raises(SchemaError, match="actor") as info:
        decode_proposal(json.dumps(data).encode())
    assert "more)" not in info.value.reason
    assert "MemoryRemembered" not in info.value.reason


def test_only_forgotten_events_carry_a_reason() -> None:
    with pytest.raises(ValidationError, match="reason"):
        make(MemoryUpdated, reason="no")
    with pytest.raises(ValidationError, match="reason"):
        make(MemoryForgotten, reason="x" * 1001)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("swarm", "Upper"),
        ("agent", "has.dot"),
        ("instance", ""),
        ("actor", "ABCDEF" * 5 + "00"),  # upper-case hex
        ("actor", "ab" * 15),  # 15 bytes
        ("memory_id", "short"),
        ("memory_id", "id with spaces 0001"),
    ],
)
def test_events_refuse_invalid_names_and_ids(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        make(MemoryUpdated, **{field: value})


def test_decode_proposal_refuses_another_type_with_the_right_fields() -> None:
    data = json.loads(encode(make(MemoryUpdated)))
    data["type"] = "memory.created"
    with pytest.raises(SchemaError, match=r"unknown event type 'memory\.created'") as info:
        decode_proposal(json.dumps(data).encode())
    assert "memory.remembered" in info.value.reason  # names the known types


def test_decode_proposal_names_a_missing_field() -> None:
    data = json.loads(encode(make(MemoryRemembered)))
    del data["memory_id"]
    with pytest.raises(SchemaError, match="memory_id: Field required"):
        decode_proposal(json.dumps(data).encode())


# -- records ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: f"{e.type}-{getattr(e, 'reason', '')}")
def test_log_record_round_trips_with_its_verdict(event: MemoryEvent) -> None:
    verdict = Verdict(
        law_set="2:0123456789ab",
        results=(
            LawResult(law="no-private-data", verdict="pass"),
            LawResult(law="review", verdict="flag", reason="needs a look"),
        ),
    )
    record = LogRecord(event=event, verdict=verdict)  # type: ignore[arg-type]
    decoded = decode_log_record(encode(record))
    assert decoded == record
    assert type(decoded.event) is type(event)
    assert decoded.verdict.flags == (verdict.results[1],)
    assert decoded.accepted_at == record.accepted_at


def test_decode_log_record_refuses_a_corrupt_record() -> None:
    record = LogRecord(event=make(MemoryUpdated), verdict=Verdict(law_set="0:x"))
    data = json.loads(encode(record))
    del data["verdict"]
    with pytest.raises(SchemaError, match="corrupt log record: verdict"):
        decode_log_record(json.dumps(data).encode())
    with pytest.raises(SchemaError, match="corrupt log record"):
        decode_log_record(b"not json")
    data = json.loads(encode(record))
    data["event"]["type"] = "memory.unknown"
    with pytest.raises(SchemaError, match="corrupt log record"):
        decode_log_record(json.dumps(data).encode())


def test_rejection_record_round_trips() -> None:
    record = RejectionRecord(
        event_id="01HZZZEVENT00000000000001",
        type="memory.updated",
        agent="planner",
        instance="one",
        memory_id=MID,
        check="no-private-data",
        kind="law",
        reason="the memory contains private data (email)",
        where="email address in content at 3-20",
    )
    assert decode_rejection(encode(record)) == record
    with pytest.raises(SchemaError, match="corrupt rejection record"):
        decode_rejection(b'{"event_id": "x"}')


def test_verdict_flags_lists_only_flag_results() -> None:
    verdict = Verdict(
        law_set="3:x",
        results=(
            LawResult(law="a", verdict="pass"),
            LawResult(law="b", verdict="flag", reason="r"),
            LawResult(law="c", verdict="flag"),
        ),
    )
    assert [r.law for r in verdict.flags] == ["b", "c"]
    assert Verdict(law_set="0:x").flags == ()


def test_receipt_defaults_to_not_duplicate_without_flags() -> None:
    receipt = Receipt(id=MID, seq=3, event_id="e")
    assert (receipt.duplicate, receipt.flags) == (False, ())


# -- ids -------------------------------------------------------------------------------------------


def test_new_id_is_26_crockford_characters() -> None:
    for _ in range(50):
        value = new_id()
        assert len(value) == 26
        assert set(value) <= CROCKFORD


def test_new_id_is_unique() -> None:
    assert len({new_id() for _ in range(2000)}) == 2000


def test_new_id_sorts_in_creation_order_across_milliseconds() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_id())
        time.sleep(0.003)
    assert ids == sorted(ids)


def test_new_id_starts_with_the_current_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    number = 0
    for ch in value:
        number = number * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(ch)
    assert before <= number >> 80 <= after


# -- errors on the wire ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "cls"),
    [
        ("schema", SchemaError),
        ("identity", IdentityError),
        ("change", ChangeError),
        ("size", SizeLimitExceeded),
    ],
)
def test_rejection_from_wire_rebuilds_the_typed_check_error(
    check: str, cls: type[Rejected]
) -> None:
    err = rejection_from_wire(check, "why", kind="check", event_id="e1")
    assert type(err) is cls
    assert (err.check, err.reason, err.event_id) == (check, "why", "e1")
    assert str(err) == f"rejected by {check}: why"


def test_rejection_from_wire_rebuilds_law_violations_and_other_checks() -> None:
    law = rejection_from_wire("no-private-data", "why", kind="law", where="content at 1-2")
    assert isinstance(law, LawViolation)
    assert (law.law, law.check) == ("no-private-data", "no-private-data")
    assert law.where == "content at 1-2"
    scope = rejection_from_wire("scope", "private", kind="check")
    assert type(scope) is Rejected
    assert scope.check == "scope"


# -- subjects --------------------------------------------------------------------------------------


def test_subjects_name_streams_and_subjects_of_one_swarm() -> None:
    s = Subjects("team-a")
    assert (s.inbox_stream, s.log_stream, s.rejected_stream) == (
        "SWARM_TEAM-A_INBOX",
        "SWARM_TEAM-A_LOG",
        "SWARM_TEAM-A_REJECTED",
    )
    assert s.inbox("planner", "one") == "swarm.team-a.inbox.planner.one"
    assert s.inbox_all == "swarm.team-a.inbox.>"
    assert s.log("planner", MID) == f"swarm.team-a.log.planner.{MID}"
    assert s.log_all == "swarm.team-a.log.>"
    assert s.log_of_memory(MID) == f"swarm.team-a.log.*.{MID}"
    assert s.rejected("planner") == "swarm.team-a.rejected.planner"
    assert s.rejected_all == "swarm.team-a.rejected.>"
    assert s.api("recall", "planner") == "swarm.team-a.api.recall.planner"
    assert s.parse_api(s.api("recall", "_admin")) == ("recall", "_admin")
    assert s.parse_api("swarm.team-a.api.recall") is None


def test_subjects_parse_inbox_returns_the_writer_or_none() -> None:
    s = Subjects("team-a")
    assert s.parse_inbox(s.inbox("planner", "one")) == ("planner", "one")
    assert s.parse_inbox("swarm.team-b.inbox.planner.one") is None
    assert s.parse_inbox("swarm.team-a.log.planner.one") is None
    assert s.parse_inbox("swarm.team-a.inbox.planner") is None
    assert s.parse_inbox("swarm.team-a.inbox.planner.one.extra") is None


@pytest.mark.parametrize("name", ["", "Team", "a.b", "a b", "a>", "-lead", "x" * 65])
def test_subjects_refuse_an_invalid_swarm_name(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid swarm name"):
        Subjects(name)


def test_swarm_names_differing_in_dash_or_underscore_get_their_own_streams() -> None:
    dash, under = Subjects("team-a"), Subjects("team_a")
    assert {dash.inbox_stream, dash.log_stream, dash.rejected_stream}.isdisjoint(
        {under.inbox_stream, under.log_stream, under.rejected_stream}
    )
