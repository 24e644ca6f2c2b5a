"""The built-in law kinds, and the scope wrapper every kind shares.

=============== ============================ ==========================================
kind            params                       violated when
=============== ============================ ==========================================
private_data    kinds (default: every         the memory's text holds private data of
                detector kind)                those kinds (see :mod:`.detectors`)
max_content     chars                         the new content is longer than ``chars``
deny_tags       tags                          the change adds one of ``tags``
kind_allowed    kinds                         a memory is written with a kind not listed
destructive     (none)                        an agent forgets a memory another agent wrote
contradiction   (none)                        an agent changes the content of a memory
                                              another agent wrote
=============== ============================ ==========================================

A law judges the *change*: a law on content passes an event that leaves the
content as it was (recalling or forgetting an old memory is not a new write).

``contradiction`` is deliberately simple: without a semantic model, the honest
signal of a contradiction is one agent rewriting what another agent wrote. It
does not read meaning; a rewrite that agrees is flagged too, and a new memory
that contradicts an old one is not.

A factory turns a :class:`~swarm.laws.spec.LawSpec` into a law; it must raise
:class:`~swarm.errors.ConfigError` for bad params.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from swarm.errors import ConfigError
from swarm.events import MemoryForgotten, MemoryUpdated
from swarm.laws import detectors
from swarm.laws.base import Action, Law, Outcome, Proposal, law_kind, needs_related
from swarm.laws.contradict import conflict
from swarm.laws.private_data import PrivateDataLaw
from swarm.laws.spec import LawSpec, MemoryKind, join_problems

__all__ = [
    "BUILTIN_KINDS",
    "ContradictionLaw",
    "DenyTagsLaw",
    "DestructiveLaw",
    "Factory",
    "FunctionLaw",
    "KindAllowedLaw",
    "MaxContentLaw",
    "Scoped",
    "law_from_check",
    "params_of",
]

Factory = Callable[[LawSpec], Law]
"""What a law kind is: a function from a spec to a law."""

P = TypeVar("P", bound=BaseModel)


def params_of(spec: LawSpec, model: type[P]) -> P:
    """``spec.params`` validated by a pydantic model; a ConfigError naming the law otherwise."""
    try:
        return model.model_validate(spec.params)
    except ValidationError as err:
        known = ", ".join(model.model_fields) or "none"
        problems = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msg = "unknown param" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError(
            f"{spec.origin}: params of kind {spec.kind} (known: {known}): {join_problems(problems)}"
        ) from None


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _fold_tag(tag: str) -> str:
    return " ".join(detectors.normalise(tag)[0].casefold().split())


# -- the scope wrapper -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scoped:
    """A law that only runs for some agents and/or memory kinds; others pass untouched.

    A memory kind matches when the memory has it before *or* after the change, so
    changing a memory's kind does not take it out of a law's reach.
    """

    law: Law
    agents: frozenset[str] | None = None
    kinds: frozenset[str] | None = None

    @property
    def id(self) -> str:
        return self.law.id

    @property
    def description(self) -> str:
        return self.law.description

    @property
    def action(self) -> Action:
        return self.law.action

    @property
    def kind(self) -> str:
        return law_kind(self.law)

    @property
    def needs_related(self) -> bool:
        return needs_related(self.law)

    def applies(self, proposal: Proposal) -> bool:
        if self.agents is not None and proposal.event.agent not in self.agents:
            return False
        if self.kinds is None:
            return True
        before = proposal.before.kind if proposal.before is not None else None
        return proposal.after.kind in self.kinds or before in self.kinds

    def check(self, proposal: Proposal) -> Outcome:
        if not self.applies(proposal):
            return Outcome.passed()
        return self.law.check(proposal)

    def params(self) -> dict[str, object]:
        scope = {
            "agents": sorted(self.agents) if self.agents is not None else None,
            "kinds": sorted(self.kinds) if self.kinds is not None else None,
        }
        return {**self.law.params(), "scope": scope}


# -- a law from a function (for custom kinds) --------------------------------------------------


@dataclass(frozen=True)
class FunctionLaw:
    """A law made of a spec and a ``check`` function: the quickest custom kind."""

    spec: LawSpec
    fn: Callable[[Proposal], Outcome] = field(compare=False)
    parameters: Mapping[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def description(self) -> str:
        return self.spec.description or f"a {self.spec.kind} law"

    @property
    def action(self) -> Action:
        return self.spec.action

    @property
    def kind(self) -> str:
        return self.spec.kind

    def check(self, proposal: Proposal) -> Outcome:
        return self.fn(proposal)

    def params(self) -> dict[str, object]:
        return dict(self.parameters)


def law_from_check(
    spec: LawSpec,
    check: Callable[[Proposal], Outcome],
    params: Mapping[str, object] | None = None,
) -> Law:
    """A law with the spec's id, description and action that runs ``check``.

    ``params`` are what the law-set version is computed from (default: ``spec.params``):
    pass the validated values, so two specs that mean the same law get the same version.
    """
    return FunctionLaw(spec, check, dict(spec.params if params is None else params))


# -- built-in kinds ----------------------------------------------------------------------------


def _description(spec: LawSpec, default: str) -> str:
    return spec.description or default


class PrivateDataParams(_Params):
    kinds: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="detector kinds; default: all"
    )


def private_data(spec: LawSpec) -> Law:
    params = params_of(spec, PrivateDataParams)
    known = tuple(detectors.KINDS)
    kinds = params.kinds if params.kinds is not None else known
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        raise ConfigError(
            f"{spec.origin}: unknown private data kind {unknown[0]!r} (known: {', '.join(known)})"
        )
    return PrivateDataLaw(
        id=spec.id,
        description=_description(spec, "Never expose private data"),
        action=spec.action,
        kinds=tuple(k for k in known if k in kinds),
    )


@dataclass(frozen=True)
class MaxContentLaw:
    kind: ClassVar[str] = "max_content"
    id: str
    description: str
    action: Action
    chars: int

    def check(self, proposal: Proposal) -> Outcome:
        before, after = proposal.before, proposal.after
        if before is not None and before.content == after.content:
            return Outcome.passed()
        if len(after.content) <= self.chars:
            return Outcome.passed()
        return Outcome(
            ok=False,
            reason=f"content is {len(after.content)} characters; this law allows {self.chars}",
            where="content",
        )

    def params(self) -> dict[str, object]:
        return {"chars": self.chars}


class MaxContentParams(_Params):
    chars: Annotated[StrictInt, Field(gt=0)]


def max_content(spec: LawSpec) -> Law:
    params = params_of(spec, MaxContentParams)
    return MaxContentLaw(
        spec.id,
        _description(spec, f"Content is at most {params.chars} characters"),
        spec.action,
        params.chars,
    )


@dataclass(frozen=True)
class DenyTagsLaw:
    """Refuses adding a denied tag; case, width and spacing do not matter."""

    kind: ClassVar[str] = "deny_tags"
    id: str
    description: str
    action: Action
    tags: tuple[str, ...]
    _folded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", frozenset(_fold_tag(t) for t in self.tags))

    def check(self, proposal: Proposal) -> Outcome:
        old = set(proposal.before.tags) if proposal.before is not None else set()
        added = [t for t in proposal.after.tags if t not in old]
        hits = sorted({f for f in map(_fold_tag, added) if f in self._folded})
        if not hits:
            return Outcome.passed()
        return Outcome(ok=False, reason=f"tag {hits[0]!r} is not allowed", where="tags")

    def params(self) -> dict[str, object]:
        return {"tags": sorted(self._folded)}


Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DenyTagsParams(_Params):
    tags: tuple[Tag, ...] = Field(min_length=1)


def deny_tags(spec: LawSpec) -> Law:
    params = params_of(spec, DenyTagsParams)
    return DenyTagsLaw(
        spec.id,
        _description(spec, "Tags not allowed: " + ", ".join(params.tags)),
        spec.action,
        params.tags,
    )


@dataclass(frozen=True)
class KindAllowedLaw:
    """Only the listed memory kinds may be written (checked when the kind is set)."""

    kind: ClassVar[str] = "kind_allowed"
    id: str
    description: str
    action: Action
    kinds: frozenset[str]

    def check(self, proposal: Proposal) -> Outcome:
        before, after = proposal.before, proposal.after
        if before is not None and before.kind == after.kind:
            return Outcome.passed()
        if after.kind in self.kinds:
            return Outcome.passed()
        allowed = ", ".join(sorted(self.kinds))
        return Outcome(
            ok=False,
            reason=f"kind {after.kind!r} is not allowed (allowed: {allowed})",
            where="kind",
        )

    def params(self) -> dict[str, object]:
        return {"kinds": sorted(self.kinds)}


class KindAllowedParams(_Params):
    kinds: tuple[MemoryKind, ...] = Field(min_length=1)


def kind_allowed(spec: LawSpec) -> Law:
    params = params_of(spec, KindAllowedParams)
    return KindAllowedLaw(
        spec.id,
        _description(spec, "Memory kinds allowed: " + ", ".join(params.kinds)),
        spec.action,
        frozenset(params.kinds),
    )


class NoParams(_Params):
    pass


@dataclass(frozen=True)
class DestructiveLaw:
    """Violated when an agent forgets a memory that another agent wrote."""

    kind: ClassVar[str] = "destructive"
    id: str
    description: str
    action: Action

    def check(self, proposal: Proposal) -> Outcome:
        event, before = proposal.event, proposal.before
        if not isinstance(event, MemoryForgotten) or before is None or before.agent == event.agent:
            return Outcome.passed()
        return Outcome(
            ok=False,
            reason=f"{event.agent} forgets a memory written by {before.agent}",
            where="forgotten",
        )

    def params(self) -> dict[str, object]:
        return {}


def destructive(spec: LawSpec) -> Law:
    params_of(spec, NoParams)
    return DestructiveLaw(
        spec.id, _description(spec, "Ask before forgetting another agent's memory"), spec.action
    )


@dataclass(frozen=True)
class ContradictionLaw:
    """Violated when a write contradicts what another agent wrote on the same subject.

    Two signals, neither reading meaning (no model): the writer rewrites the content
    of another agent's memory; or the new content reads like a memory of another
    agent (``related``, found by the gate with full-text search) yet says the
    opposite (one side negated) or names a different value in the same sentence
    (see :mod:`.contradict`). Reasons name the other memory, never its words.
    """

    kind: ClassVar[str] = "contradiction"
    needs_related: ClassVar[bool] = True
    id: str
    description: str
    action: Action

    def check(self, proposal: Proposal) -> Outcome:
        event, before, after = proposal.event, proposal.before, proposal.after
        if before is not None and before.content == after.content:
            return Outcome.passed()
        if isinstance(event, MemoryUpdated) and before is not None and before.agent != event.agent:
            return Outcome(
                ok=False,
                reason=(
                    f"{event.agent} changes the content of a memory written by {before.agent} "
                    "(a possible contradiction)"
                ),
                where="content",
            )
        for other in proposal.related:
            if other.id == after.id or other.agent == event.agent:
                continue
            why = conflict(after.content, other.content)
            if why is not None:
                return Outcome(
                    ok=False,
                    reason=(
                        f"contradicts memory {other.id} of {other.agent} (same subject, {why})"
                    ),
                    where="content",
                )
        return Outcome.passed()

    def params(self) -> dict[str, object]:
        return {}


def contradiction(spec: LawSpec) -> Law:
    params_of(spec, NoParams)
    return ContradictionLaw(
        spec.id,
        _description(spec, "Flag a rewrite of another agent's memory for review"),
        spec.action,
    )


BUILTIN_KINDS: dict[str, Factory] = {
    "private_data": private_data,
    "max_content": max_content,
    "deny_tags": deny_tags,
    "kind_allowed": kind_allowed,
    "destructive": destructive,
    "contradiction": contradiction,
}
