"""The law mechanism: an ordered list of named validators.

A law is any object with an ``id``, a ``description``, an ``action`` and a
``check(proposal) -> Outcome`` method. It sees the event and the memory's
state before and after the change, and must be pure: no I/O, no clock, so the
same proposal always gets the same answer on every gate.

``action`` says what a violation does: ``reject`` (the event never enters the
log) or ``flag`` (accepted, marked for review). The approval flow
(``require_approval``) arrives with the law system; until then it is refused at
load time rather than silently treated as something else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from swarm.crdt import MemoryState
from swarm.errors import ConfigError
from swarm.events import LawResult, MemoryEvent

__all__ = ["Law", "LawSet", "Outcome", "Proposal"]

Action = Literal["reject", "flag"]


@dataclass(frozen=True)
class Proposal:
    """What a law judges: an event and the state it would produce."""

    event: MemoryEvent
    before: MemoryState | None
    after: MemoryState


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


@dataclass(frozen=True)
class Judgement:
    results: tuple[LawResult, ...]
    violation: tuple[Law, Outcome] | None


class LawSet:
    """An ordered, versioned list of laws, run on every proposal."""

    def __init__(self, laws: Iterable[Law] = ()) -> None:
        self._laws: tuple[Law, ...] = tuple(laws)
        seen: set[str] = set()
        for law in self._laws:
            if law.action not in ("reject", "flag"):
                raise ConfigError(f"law {law.id}: action {law.action!r} is not supported here")
            if law.id in seen:
                raise ConfigError(f"law id {law.id!r} is used twice")
            seen.add(law.id)
        spec = [
            {"id": law.id, "kind": type(law).__name__, "action": law.action, **law.params()}
            for law in self._laws
        ]
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        self.version = f"{len(self._laws)}:{digest}"

    @property
    def laws(self) -> Sequence[Law]:
        return self._laws

    def judge(self, proposal: Proposal) -> Judgement:
        """Run every law in order; the first rejecting violation stops the run."""
        results: list[LawResult] = []
        for law in self._laws:
            outcome = law.check(proposal)
            if outcome.ok:
                results.append(LawResult(law=law.id, verdict="pass"))
                continue
            if law.action == "flag":
                results.append(LawResult(law=law.id, verdict="flag", reason=outcome.reason))
                continue
            results.append(LawResult(law=law.id, verdict="reject", reason=outcome.reason))
            return Judgement(tuple(results), (law, outcome))
        return Judgement(tuple(results), None)
