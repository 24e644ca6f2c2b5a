"""The pure fold: log records in, table rows out. No I/O.

Each memory's Automerge document is advanced by the record's change (in the
lenient mode: a change whose dependencies are not yet here waits inside the
document), and the memory's state after the event becomes a row. Two replicas
that fold the same records — in any order the CRDT allows — produce the same
documents and so the same current rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from swarm.crdt import MemoryDoc, MemoryState
from swarm.errors import ChangeError
from swarm.events import (
    LogRecord,
    MemoryErased,
    ProposalDecided,
    ProposalOpened,
    SystemRecord,
)

__all__ = ["Folded", "Projected", "fold", "recall_row"]

log = structlog.get_logger(__name__)


@dataclass
class Projected:
    """A memory as the projector holds it between batches."""

    doc: MemoryDoc
    version: int = 0


@dataclass
class Folded:
    last_seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    memories: dict[str, dict[str, Any]] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: dict[str, Projected] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # the stored bytes, by seq


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def memory_row(state: MemoryState, *, record: LogRecord, seq: int, version: int) -> dict[str, Any]:
    event = record.event
    row = state.as_dict()
    row.update(
        created_at=_parse_time(state.created_at),
        updated_at=record.accepted_at,
        updated_by=f"{event.agent}@{event.instance}",
        seq=seq,
        version=version,
    )
    return row


def recall_row(memory: Mapping[str, Any]) -> dict[str, Any]:
    """The LanceDB row of a memories row (its content opened: see swarm.keystore).
    An erased memory, or one whose key is not here, is stored as forgotten, text-less."""
    hidden = bool(memory.get("erased") or memory.get("sealed"))
    return {
        "id": memory["id"],
        "content": "" if hidden else memory["content"],
        "kind": memory["kind"],
        "tags": list(memory["tags"] or []),
        "agent": memory["agent"],
        "private": bool(memory["private"]),
        "importance": float(memory["importance"]),
        "seq": int(memory["seq"]),
        "forgotten": bool(memory["forgotten"]) or hidden,
    }


def unreadable_row(seq: int) -> dict[str, Any]:
    """The ``events`` row of a log entry that does not parse (written around the gate)."""
    return {
        "seq": seq,
        "event_id": f"unreadable-{seq}",
        "type": "unreadable",
        "agent": None,
        "instance": None,
        "memory_id": None,
        "at": None,
        "accepted_at": None,
        "law_set": None,
        "flags": "[]",
        "payload": None,
        "trace_id": None,
    }


def system_event_row(seq: int, record: SystemRecord, trace_id: str | None) -> dict[str, Any]:
    """The ``events`` row of a system record (a law change, a proposal, a decision)."""
    agent, instance, memory_id, law_set = record.by, None, None, None
    if isinstance(record, ProposalOpened) and record.event is not None:
        agent, instance = record.event.agent, record.event.instance
        memory_id, law_set = record.event.memory_id, record.verdict.law_set
    elif isinstance(record, ProposalOpened):
        memory_id = record.rollback.memory_id if record.rollback else None
    elif isinstance(record, ProposalDecided):
        memory_id = record.memory_id
    elif isinstance(record, MemoryErased):
        memory_id = record.memories[0] if len(record.memories) == 1 else None
    else:
        law_set = record.law_set
    return {
        "seq": seq,
        "event_id": record.id,
        "type": record.type,
        "agent": agent,
        "instance": instance,
        "memory_id": memory_id,
        "at": record.at,
        "accepted_at": record.at,
        "law_set": law_set,
        "flags": "[]",
        "payload": record.model_dump_json(),
        "trace_id": trace_id,
    }


def _flags_json(record: LogRecord) -> str:
    flags = record.verdict.flags
    return json.dumps([r.model_dump() for r in flags]) if flags else "[]"


def fold(
    records: Iterable[tuple[int, LogRecord | SystemRecord, str | None]],
    known: Mapping[str, Projected],
) -> Folded:
    """Fold ``(seq, record, trace_id)`` in order over the ``known`` memories.

    ``known`` must hold every memory the records touch that already has events
    (an absent memory starts empty). It is not modified: the new values are in
    ``Folded.touched``, to adopt once the rows are committed. System records
    (laws, proposals) only add an ``events`` row: they change no memory.
    """
    out = Folded()
    last_seq_of: dict[str, int] = {}
    for seq, record, trace_id in records:
        out.last_seq = max(out.last_seq, seq)
        if not isinstance(record, LogRecord):
            out.events.append(system_event_row(seq, record, trace_id))
            continue
        event = record.event
        out.events.append(
            {
                "seq": seq,
                "event_id": event.id,
                "type": event.type_name,
                "agent": event.agent,
                "instance": event.instance,
                "memory_id": event.memory_id,
                "at": event.at,
                "accepted_at": record.accepted_at,
                "law_set": record.verdict.law_set,
                "flags": _flags_json(record),
                "payload": event.model_dump_json(),
                "trace_id": trace_id,
            }
        )
        mid = event.memory_id
        current = out.touched.get(mid) or known.get(mid) or Projected(MemoryDoc())
        doc, _ = current.doc.apply(event.change, strict=False)
        projected = Projected(doc, current.version + 1)
        out.touched[mid] = projected
        try:
            state = doc.state()
        except ChangeError as err:  # the gate checked it; a replica must not stop on it
            log.error("unreadable_memory", memory_id=mid, seq=seq, error=str(err))
            state = None
        if state is not None:
            row = memory_row(state, record=record, seq=seq, version=projected.version)
            out.memories[mid] = row
            out.versions.append(
                {
                    "memory_id": mid,
                    "seq": seq,
                    "event_id": event.id,
                    "type": event.type_name,
                    "agent": event.agent,
                    "instance": event.instance,
                    "at": record.accepted_at,
                    "state": json.dumps(state.as_dict()),
                }
            )
        last_seq_of[mid] = seq
    # One save per memory per batch (not per event): the last state is the one kept.
    for mid, seq in last_seq_of.items():
        doc = out.touched[mid].doc
        out.docs[mid] = {"memory_id": mid, "doc": doc.save(), "heads": doc.heads(), "seq": seq}
    return out
