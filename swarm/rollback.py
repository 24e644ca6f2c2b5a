"""Rollback as compensating changes: what each memory must become, and the change that does it.

A rollback restores the memories' state as of a log sequence S, for the whole
swarm, one memory, or one agent's writes. It never rewinds a document (a fork at
old heads comes back on the next merge): it appends *new* Automerge changes that
set each field back, so every replica converges on the restored state and history
shows the rollback as events of their own (``memory.restored``).

* ``swarm`` and ``memory`` scope: each memory returns to its state at S; a memory
  created after S is forgotten.
* ``agent`` scope (undo what agent A wrote after S): a field whose latest value came
  from A returns to the value it had before A's latest run of writes; later writes by
  other agents are kept; memories A created after S are forgotten; a memory A forgot
  after S is remembered again.

Recall counts are per-writer grow-only counters (decision 0003) and stay as they are.
Pure: the gate reads the histories and appends the changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from swarm.crdt import MemoryDoc, MemoryState, author
from swarm.events import RollbackSpec

__all__ = ["Version", "compensate", "target"]

#: The fields a rollback restores (the writer-editable ones, and the tombstone).
FIELDS = ("content", "kind", "tags", "importance", "forgotten", "forgotten_reason")


@dataclass(frozen=True)
class Version:
    """A memory's state after one of its events, and who wrote that event."""

    seq: int
    agent: str
    state: MemoryState


def _as_of(versions: Sequence[Version], seq: int) -> MemoryState | None:
    found = None
    for version in versions:
        if version.seq > seq:
            break
        found = version.state
    return found


def target(versions: Sequence[Version], spec: RollbackSpec) -> MemoryState | None:
    """What the memory must be after the rollback; None: it must be forgotten.

    ``versions`` is the memory's whole history, in log order. Returns the current
    state itself when the rollback leaves the memory as it is.
    """
    if not versions:
        raise ValueError("a memory with no versions cannot be rolled back")
    current = versions[-1].state
    before = _as_of(versions, spec.to_seq)
    if spec.scope != "agent":
        return before
    agent = spec.agent
    if before is None:  # created after S: forgotten if A created it, else A's edits undone
        if versions[0].agent == agent:
            return None
        before = versions[0].state
    restored = {}
    for name in FIELDS:
        # The field's value after each write since S, newest last, with its writer.
        changes: list[tuple[str, object]] = []
        last = getattr(before, name)
        for version in versions:
            if version.seq <= spec.to_seq:
                continue
            value = getattr(version.state, name)
            if value != last:
                changes.append((version.agent, value))
                last = value
        if not changes or changes[-1][0] != agent:
            continue  # its latest value did not come from the agent: kept
        run_start = len(changes)
        while run_start > 0 and changes[run_start - 1][0] == agent:
            run_start -= 1
        restored[name] = changes[run_start - 1][1] if run_start else getattr(before, name)
    return replace(current, **restored) if restored else current  # type: ignore[arg-type]


def compensate(
    doc: MemoryDoc, current: MemoryState, wanted: MemoryState | None, actor: bytes, reason: str
) -> bytes | None:
    """The one Automerge change (by ``actor``) that turns ``current`` into ``wanted``
    (None: forgotten with ``reason``), or None when nothing needs to change."""
    if wanted is None:
        if current.forgotten:
            return None
        wanted = replace(current, forgotten=True, forgotten_reason=reason)
    with author(doc, actor) as (edit, out):
        if wanted.content != current.content:
            edit.set_content(wanted.content)
        if wanted.kind != current.kind:
            edit.set_kind(wanted.kind)
        if wanted.importance != current.importance:
            edit.set_importance(wanted.importance)
        for tag in sorted(set(wanted.tags) - set(current.tags)):
            edit.add_tag(tag)
        for tag in sorted(set(current.tags) - set(wanted.tags)):
            edit.remove_tag(tag)
        if wanted.forgotten and not current.forgotten:
            edit.forget(wanted.forgotten_reason)
        elif current.forgotten and not wanted.forgotten:
            edit.unforget()
    return out[0] if out else None
