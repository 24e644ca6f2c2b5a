"""Points in the log's past: "as of" a sequence or a time, and a memory's state then.

A reader names a past point either as a log sequence (``42``: everything the log
had accepted up to and including seq 42) or as a time (an ISO-8601 timestamp).
A time stands for the longest prefix of the log whose events were all accepted
at or before it: the last sequence accepted at or before the time, because the
gate stamps ``accepted_at`` in log order. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from swarm.errors import ConfigError
from swarm.events import parse_time

__all__ = ["AsOf", "as_of_wire", "describe_as_of", "last_seq_at", "memory_as_of", "parse_as_of"]

#: A past point of the log: a sequence (0 = before the first event) or a time.
AsOf = int | datetime


def parse_as_of(value: str | int | datetime) -> AsOf:
    """A log sequence (a non-negative integer, also as text) or an aware time.

    Times are ISO-8601 (``2026-11-17``, ``2026-11-17T09:30``, ``…Z``,
    ``…+02:00``); one without an offset is UTC, a date alone is its midnight UTC.
    """
    if isinstance(value, bool):
        raise ConfigError(f"as_of must be a log sequence or a time, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"as_of sequence must be 0 or more, not {value}")
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    text = str(value).strip()
    return int(text) if text.isdigit() else parse_time(text)


def since_bounds(value: str | int | None) -> tuple[int, str | None]:
    """``--since`` as (after this seq, from this ISO time or None): a seq or a time."""
    point = parse_as_of(value if value is not None and value != "" else 0)
    return (0, point.isoformat()) if isinstance(point, datetime) else (point, None)


def as_of_wire(value: AsOf) -> int | str:
    """``value`` as it travels in a JSON request: the sequence, or the time in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def describe_as_of(seq: int, given: AsOf | None = None) -> str:
    """``"as of seq 42"``, or ``"as of 2026-11-17T09:30:00+00:00 (seq 42)"``."""
    if isinstance(given, datetime):
        return f"as of {given.astimezone(UTC).isoformat()} (seq {seq})"
    return f"as of seq {seq}"


async def last_seq_at(
    when: datetime, last: int, time_at: Callable[[int], Awaitable[datetime | None]]
) -> int:
    """The last sequence in 1..``last`` accepted at or before ``when`` (0: none).

    A binary search over ``time_at(seq)`` (the acceptance time of the entry at
    ``seq``; None for a missing one, treated as accepted before ``when``), which
    relies on times rising with the sequence, as the gate writes them.
    """
    lo, hi = 0, last  # entries up to lo are at or before `when`; after hi, later
    while lo < hi:
        mid = (lo + hi + 1) // 2
        at = await time_at(mid)
        if at is None or at <= when:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _utc_text(value: Any) -> str | None:
    """A state's ``created_at`` as the projection stores it: UTC ISO-8601, or None."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def memory_as_of(
    versions: Sequence[Mapping[str, Any]], seq: int, *, applied: int | None = None
) -> dict[str, Any] | None:
    """The memory as ``get`` showed it once the log held ``seq``; None if it did not exist.

    ``versions`` are its recorded versions (``memory_versions`` rows, each with
    the ``state`` after the event), in any order; the latest at or before
    ``seq`` is the answer. ``applied`` is how many of its events the log held
    then (the row's ``version``); by default, the versions counted.
    """
    before = [v for v in versions if int(v["seq"]) <= seq]
    if not before:
        return None
    last = max(before, key=lambda v: int(v["seq"]))
    state = last["state"]
    opened = {"erased": state["erased"]} if "erased" in state else {}  # see swarm.keystore
    return (
        opened
        | {
            "id": state["id"],
            "content": state["content"],
            "kind": state["kind"],
            "tags": list(state.get("tags") or []),
            "importance": state["importance"],
            "recall_count": state["recall_count"],
            "agent": state["agent"],
            "instance": state["instance"],
            "private": state["private"],
            "forgotten": state.get("forgotten", False),
            "forgotten_reason": state.get("forgotten_reason"),
            "created_at": _utc_text(state.get("created_at")),
            "updated_at": last["at"],
            "updated_by": f"{last['agent']}@{last['instance']}",
            "seq": int(last["seq"]),
            "version": len(before) if applied is None else applied,
        }
        | ({"sealed": True} if state.get("sealed") else {})
    )
