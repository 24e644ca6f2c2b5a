"""Past points of the log: parsing ``as_of``, mapping a time to a sequence, past states."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from swarm.errors import ConfigError
from swarm.timeline import as_of_wire, describe_as_of, last_seq_at, memory_as_of, parse_as_of

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def version(seq: int, **state: object) -> dict[str, object]:
    base = {
        "id": "m1",
        "content": "first",
        "kind": "fact",
        "tags": ["ops"],
        "importance": 0.5,
        "recall_count": 0,
        "agent": "brad",
        "instance": "cloud",
        "private": False,
        "created_at": "2026-11-17T09:00:00+00:00",
        "forgotten": False,
        "forgotten_reason": None,
    }
    return {
        "memory_id": "m1",
        "seq": seq,
        "agent": "ann" if seq > 1 else "brad",
        "instance": "desk" if seq > 1 else "cloud",
        "at": (T0 + timedelta(seconds=seq)).isoformat(),
        "state": base | state,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        ("0", 0),
        (3, 3),
        ("2026-11-17", datetime(2026, 11, 17, tzinfo=UTC)),
        ("2026-11-17T09:30Z", datetime(2026, 11, 17, 9, 30, tzinfo=UTC)),
        ("2026-11-17T09:30:00", datetime(2026, 11, 17, 9, 30, tzinfo=UTC)),
    ],
)
def test_parse_as_of_reads_sequences_and_iso_times(text: str | int, expected: object) -> None:
    assert parse_as_of(text) == expected


def test_parse_as_of_keeps_an_offset_and_makes_naive_datetimes_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_as_of("2026-11-17T11:30:00+02:00") == datetime(2026, 11, 17, 9, 30, tzinfo=UTC)
    assert parse_as_of("2026-11-17T11:30:00+02:00").utcoffset() == plus_two.utcoffset(None)
    assert parse_as_of(datetime(2026, 11, 17, 9, 30)).tzinfo is UTC


@pytest.mark.parametrize("bad", ["tuesday", "-3", "", "12:00", True, -1])
def test_parse_as_of_refuses_what_is_neither(bad: str | int) -> None:
    with pytest.raises(ConfigError):
        parse_as_of(bad)


def test_as_of_travels_as_a_sequence_or_utc_text() -> None:
    assert as_of_wire(12) == 12
    noon_paris = datetime(2026, 11, 17, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_of_wire(noon_paris) == "2026-11-17T12:00:00+00:00"
    assert parse_as_of(as_of_wire(noon_paris)) == noon_paris
    assert describe_as_of(5) == "as of seq 5"
    assert describe_as_of(5, noon_paris) == "as of 2026-11-17T12:00:00+00:00 (seq 5)"


@pytest.mark.parametrize("offset", [-1, 0, 1, 2, 5, 9, 10, 11, 50])
def test_last_seq_at_finds_the_last_entry_at_or_before_the_time(offset: int) -> None:
    times = {seq: T0 + timedelta(seconds=seq) for seq in range(1, 11)}
    asked: list[int] = []

    async def time_at(seq: int) -> datetime:
        asked.append(seq)
        return times[seq]

    when = T0 + timedelta(seconds=offset)
    found = asyncio.run(last_seq_at(when, 10, time_at))
    assert found == max([s for s, t in times.items() if t <= when], default=0)
    assert len(asked) <= 4  # a binary search, not a scan


def test_last_seq_at_of_an_empty_log_is_zero() -> None:
    async def never(seq: int) -> datetime:
        raise AssertionError(seq)

    assert asyncio.run(last_seq_at(T0, 0, never)) == 0


def test_memory_as_of_is_the_latest_version_at_or_before_the_sequence() -> None:
    versions = [
        version(1),
        version(4, content="second", tags=["ops", "db"]),
        version(9, forgotten=True, forgotten_reason="old"),
    ]
    assert memory_as_of(versions, 0) is None
    first = memory_as_of(versions, 3)
    assert first is not None
    assert first["content"] == "first"
    assert (first["seq"], first["version"], first["updated_by"]) == (1, 1, "brad@cloud")
    second = memory_as_of(list(reversed(versions)), 8)  # any order
    assert second is not None
    assert (second["content"], second["tags"], second["seq"]) == ("second", ["ops", "db"], 4)
    assert second["updated_by"] == "ann@desk"
    assert second["updated_at"] == versions[1]["at"]
    last = memory_as_of(versions, 100, applied=5)
    assert last is not None
    assert (last["forgotten"], last["forgotten_reason"], last["version"]) == (True, "old", 5)


def test_memory_as_of_has_the_shape_of_a_memories_row() -> None:
    row = memory_as_of([version(1, created_at="2026-11-17T10:00:00+01:00")], 1)
    assert row is not None
    assert list(row) == [
        "id", "content", "kind", "tags", "importance", "recall_count", "agent", "instance",
        "private", "forgotten", "forgotten_reason", "created_at", "updated_at", "updated_by",
        "seq", "version",
    ]  # fmt: skip
    assert row["created_at"] == "2026-11-17T09:00:00+00:00"  # stored in UTC
    assert memory_as_of([version(1, created_at="not a time")], 1)["created_at"] is None  # type: ignore[index]


def test_since_bounds_takes_a_sequence_or_a_time() -> None:
    from swarm.timeline import since_bounds  # noqa: PLC0415

    assert since_bounds(None) == (0, None)
    assert since_bounds("42") == (42, None)
    assert since_bounds("2026-11-20") == (0, "2026-11-20T00:00:00+00:00")
