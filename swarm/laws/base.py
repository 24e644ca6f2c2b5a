"""The law mechanism: an ordered list of named validators.

A law is any object with an ``id``, a ``description``, an ``action`` and a
``check(proposal) -> Outcome`` method. It sees the event and the memory's
state before and after the change, and must be pure: no I/O, no clock, so the
same proposal always gets the same answer on every gate.

``action`` says what a violation does:

* ``reject``: the event never enters the log; the run stops at the first one.
* ``flag``: accepted, marked for review (a ``flag`` result in the verdict).
* ``require_approval``: the event must wait for a principal's approval. The
  judgement reports it in :attr:`Judgement.pending`, apart from the results.

Whoever runs a law set must act on ``pending``, or an event that needs approval
would slip through as accepted. So a :class:`LawSet` holding a
``require_approval`` law must be built with ``allow_approval=True``, by a caller
that does; otherwise it is refused at load time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol, get_args, runtime_checkable

from swarm.crdt import MemoryState, new_actor
from swarm.errors import ConfigError
from swarm.events import (
    LawResult,
    MemoryEvent,
    MemoryForgotten,
    MemoryRemembered,
    MemoryUpdated,
)

__all__ = [
    "ACTIONS",
    "Action",
    "Decision",
    "Judgement",
    "Law",
    "LawSet",
    "Outcome",
    "Pending",
    "Proposal",
    "Related",
    "TrialEvent",
    "law_kind",
    "trial_proposal",
]

Action = Literal["reject", "flag", "require_approval"]
ACTIONS: tuple[Action, ...] = get_args(Action)

Decision = Literal["accept", "reject", "pending", "flag"]
"""The overall answer of a judgement, strongest first: reject > pending > flag > accept."""


@dataclass(frozen=True)
class Related:
    """Another memory on a similar subject, as the writer can see it (for contradiction)."""

    id: str
    agent: str
    content: str
    kind: str = "fact"


@dataclass(frozen=True)
class Proposal:
    """What a law judges: an event and the state it would produce.

    ``related`` holds other memories that read like the new content, for laws
    that declare ``needs_related = True`` (the gate looks them up only then).
    """

    event: MemoryEvent
    before: MemoryState | None
    after: MemoryState
    related: tuple[Related, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """A law's answer. ``ok=False`` is a violation; ``where`` never holds the matched text."""

    ok: bool
    reason: str | None = None
    where: str | None = None

    @classmethod
    def passed(cls) -> Outcome:
        return _PASSED


_PASSED = Outcome(ok=True)


@runtime_checkable
class Law(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def action(self) -> Action: ...

    def check(self, proposal: Proposal) -> Outcome: ...

    def params(self) -> dict[str, object]: ...


def needs_related(law: Law) -> bool:
    """Whether a law reads ``Proposal.related`` (a ``needs_related`` attribute that is true)."""
    return bool(getattr(law, "needs_related", False))


def law_kind(law: Law) -> str:
    """The kind a law reports for the law-set version: its ``kind`` if it has one, else its type."""
    kind = getattr(law, "kind", None)
    return kind if isinstance(kind, str) else type(law).__name__


@dataclass(frozen=True)
class Pending:
    """A ``require_approval`` law that the proposal violates: it must wait for approval."""

    law: str
    reason: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class Judgement:
    """What the law set says about one proposal.

    ``results`` holds one pass/flag/reject result per law that ran, in order, except
    the ``require_approval`` laws that were violated: those are in ``pending``.
    ``violation`` is the rejecting law and its outcome (the run stopped there).
    """

    results: tuple[LawResult, ...]
    violation: tuple[Law, Outcome] | None
    pending: tuple[Pending, ...] = ()

    @property
    def decision(self) -> Decision:
        if self.violation is not None:
            return "reject"
        if self.pending:
            return "pending"
        if any(r.verdict == "flag" for r in self.results):
            return "flag"
        return "accept"


class LawSet:
    """An ordered, versioned list of laws, run on every proposal.

    ``allow_approval``: accept ``require_approval`` laws. Only for a caller that
    acts on :attr:`Judgement.pending` (holds the event until it is approved).
    ``specs``: the specs the laws were built from, when they were (what the gate
    records in the log); None for a set of law objects made in code.
    """

    def __init__(
        self,
        laws: Iterable[Law] = (),
        *,
        allow_approval: bool = False,
        specs: Sequence[object] | None = None,
    ) -> None:
        self._laws: tuple[Law, ...] = tuple(laws)
        self.specs: tuple[object, ...] | None = tuple(specs) if specs is not None else None
        allowed: tuple[str, ...] = ACTIONS if allow_approval else ("reject", "flag")
        seen: set[str] = set()
        for law in self._laws:
            if law.action not in allowed:
                hint = (
                    " (this law set is not run by anyone who holds events for approval)"
                    if law.action == "require_approval"
                    else ""
                )
                raise ConfigError(
                    f"law {law.id}: action {law.action!r} is not supported here{hint}"
                )
            if law.id in seen:
                raise ConfigError(f"law id {law.id!r} is used twice")
            seen.add(law.id)
        spec = [
            {"id": law.id, "kind": law_kind(law), "action": law.action, **law.params()}
            for law in self._laws
        ]
        blob = json.dumps(spec, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        self.version = f"{len(self._laws)}:{digest}"

    @property
    def laws(self) -> Sequence[Law]:
        return self._laws

    @property
    def needs_related(self) -> bool:
        """Whether any law reads related memories (the gate then looks them up)."""
        return any(needs_related(law) for law in self._laws)

    def judge(self, proposal: Proposal) -> Judgement:
        """Run every law in order; the first rejecting violation stops the run.

        A violated ``require_approval`` law does not stop the run (a later law may
        still reject); it is reported in ``pending``.
        """
        results: list[LawResult] = []
        pending: list[Pending] = []
        for law in self._laws:
            outcome = law.check(proposal)
            if outcome.ok:
                results.append(LawResult(law=law.id, verdict="pass"))
                continue
            if law.action == "flag":
                results.append(LawResult(law=law.id, verdict="flag", reason=outcome.reason))
                continue
            if law.action == "require_approval":
                pending.append(Pending(law=law.id, reason=outcome.reason, where=outcome.where))
                continue
            results.append(LawResult(law=law.id, verdict="reject", reason=outcome.reason))
            return Judgement(tuple(results), (law, outcome), tuple(pending))
        return Judgement(tuple(results), None, tuple(pending))


TrialEvent = Literal["remember", "update", "forget"]

_TRIAL_MEMORY_ID = "01LAWTRIAL0000000000000000"
_TRIAL_PREVIOUS = "(the memory's previous content)"


def trial_proposal(
    content: str,
    *,
    agent: str = "cli",
    kind: str = "fact",
    tags: Sequence[str] = (),
    event: TrialEvent = "remember",
    owner: str | None = None,
    swarm: str = "trial",
    instance: str = "trial",
) -> Proposal:
    """A proposal made up to try laws without a swarm (``swarm laws test``).

    ``remember``: ``agent`` writes a new memory with ``content``. ``update``: ``agent``
    changes the content of a memory ``owner`` wrote (its previous content differs).
    ``forget``: ``agent`` forgets ``owner``'s memory holding ``content``. ``owner``
    defaults to ``agent``. The event carries no real Automerge change: only laws
    may judge it, not the gate. Raises pydantic's ValidationError for a bad agent name.
    """
    owner = owner or agent
    fields: dict[str, object] = {
        "swarm": swarm,
        "agent": agent,
        "instance": instance,
        "actor": new_actor(swarm, agent, instance).hex(),
        "memory_id": _TRIAL_MEMORY_ID,
        "change": b"",
    }
    state = MemoryState(
        id=_TRIAL_MEMORY_ID,
        content=content,
        kind=kind,
        tags=tuple(sorted(set(tags))),
        importance=0.5,
        recall_count=0,
        agent=owner,
        instance=instance if owner == agent else "trial-owner",
        private=False,
        created_at="2024-01-01T00:00:00+00:00",
    )
    if event == "remember":
        return Proposal(MemoryRemembered.model_validate(fields), None, state)
    if event == "update":
        before = replace(state, content=_TRIAL_PREVIOUS)
        return Proposal(MemoryUpdated.model_validate(fields), before, state)
    after = replace(state, forgotten=True)
    return Proposal(MemoryForgotten.model_validate(fields), state, after)
