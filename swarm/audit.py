"""Prove the log is whole: verify its hash chain and its writers' signatures.

Every log entry carries the sequence it was written at and the hash of the entry
before it (see :mod:`swarm.chain`), and every memory event is signed by its
agent's ed25519 key once the swarm has registered agents. :func:`verify` walks the
entries in order and names the first sequence where one was altered, removed or
reordered:

* an entry at a position other than the one it was written at: one before it was
  removed (or they were reordered);
* a gap in the sequences: an entry is missing;
* an entry whose successor names another hash: that entry was altered;
* an entry that does not parse, or an event whose signature does not verify
  against any key its agent has had.

The last entry has no successor to vouch for it: only its signature (for a memory
event) covers it, and comparing a copy with the live log's head closes that gap.
Pure: callers read the entries (the live LOG, or a replay's ``event_records``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from swarm.chain import Head, digest
from swarm.codec import decode_log_record, decode_system_record
from swarm.errors import SchemaError
from swarm.events import LogRecord, SystemRecord
from swarm.identity import verify as verify_signature

__all__ = ["AuditReport", "Finding", "decode_entry", "verify"]


@dataclass(frozen=True)
class Finding:
    seq: int
    problem: str


@dataclass
class AuditReport:
    checked: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    head: str | None = None
    signed: int = 0
    unsigned: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad(self) -> Finding | None:
        return min(self.findings, key=lambda f: f.seq) if self.findings else None

    def as_dict(self) -> dict[str, Any]:
        bad = self.first_bad
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head": self.head,
            "signed": self.signed,
            "unsigned": self.unsigned,
            "first_bad_seq": bad.seq if bad else None,
            "problem": bad.problem if bad else None,
            "findings": [{"seq": f.seq, "problem": f.problem} for f in self.findings[:100]],
        }


def decode_entry(data: bytes) -> LogRecord | SystemRecord:
    """A log entry from its stored bytes alone (a memory event's record has ``event``)."""
    try:
        top = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"not JSON: {err}") from None
    if isinstance(top, dict) and "verdict" in top and "type" not in top:
        return decode_log_record(data)
    return decode_system_record(data)


def verify(
    entries: Iterable[tuple[int, bytes]],
    *,
    keys: Mapping[str, Sequence[str]] | None = None,
    start: Head | None = None,
) -> AuditReport:
    """Check ``(seq, stored bytes)`` in order from ``start`` (default: the log's beginning).

    ``keys``: every public key each agent has had (None: signatures are not checked).
    A memory event without a signature counts as ``unsigned`` (written in open mode).
    """
    report = AuditReport()
    head = start or Head()
    expected_seq = head.seq + 1
    prev_hash = head.hash
    for position, data in entries:
        report.checked += 1
        report.first_seq = report.first_seq or position
        report.last_seq = position
        if position != expected_seq:
            what = "missing" if position > expected_seq else "repeated or out of order"
            report.findings.append(
                Finding(expected_seq, f"seq {expected_seq} is {what}: the next entry is {position}")
            )
        try:
            entry = decode_entry(data)
        except (SchemaError, ValidationError) as err:
            report.findings.append(Finding(position, f"unreadable entry: {err}"))
            entry = None
        if entry is not None:
            _check_entry(report, position, entry, prev_hash, keys)
        prev_hash = digest(data)
        expected_seq = position + 1
    report.head = prev_hash
    return report


def _check_entry(
    report: AuditReport,
    position: int,
    entry: LogRecord | SystemRecord,
    prev_hash: str | None,
    keys: Mapping[str, Sequence[str]] | None,
) -> None:
    written_at = entry.seq
    if written_at is not None and written_at != position:
        report.findings.append(
            Finding(
                position,
                f"seq {position} holds the entry written at seq {written_at}: "
                "an entry was removed or the entries were reordered",
            )
        )
    elif entry.prev != prev_hash and (written_at is not None or entry.prev is not None):
        # This entry is where it was written, but the one before is not what it named.
        report.findings.append(
            Finding(
                position - 1,
                f"seq {position - 1} was altered: seq {position} names another hash for it",
            )
        )
    if not isinstance(entry, LogRecord):
        return
    event = entry.event
    if not event.signature:
        report.unsigned += 1
        return
    report.signed += 1
    if keys is not None and not any(verify_signature(event, k) for k in keys.get(event.agent, ())):
        report.findings.append(
            Finding(position, f"seq {position}: the signature is not {event.agent}'s")
        )
