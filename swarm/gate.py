"""The gate's decision: may this proposed event enter the log?

Pure: the gate service (:mod:`swarm.service`) does the I/O, this module only
decides. Checks run in a fixed order and the first failure wins:

0. ``rate``      the instance is within its rate limit (checked first, on the subject
                 alone, so a flood costs the gate almost nothing)
1. ``size``      the raw event is within the configured limit
2. ``schema``    it parses as a known event type and schema version
3. ``identity``  the inbox subject, the envelope and the Automerge actor agree
                 (an instance cannot write as another); once the swarm has registered
                 agents, the envelope is signed by the agent's registered, unrevoked key
4. ``change``    the bytes are exactly one valid Automerge change by that actor,
                 building on history the log has; the resulting memory is well formed
                 and the event type matches what the change does
5. ``scope``     a private memory is written only by the agent that owns it
6. laws          the ordered law set, against the state the change produces
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from swarm.codec import decode_proposal
from swarm.crdt import MemoryDoc, MemoryState, change_chunks, instance_tag
from swarm.errors import (
    ChangeError,
    IdentityError,
    LawViolation,
    Rejected,
    SizeLimitExceeded,
)
from swarm.events import (
    LawResult,
    LogRecord,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    RejectionRecord,
    Verdict,
)
from swarm.identity import AgentEntry, verify
from swarm.keystore import Keystore
from swarm.laws.base import LawSet, Proposal, Related
from swarm.sealing import SealError, key_id_of


def _core(state: MemoryState) -> tuple[object, ...]:
    """What the writer can edit, minus recall counters and the tombstone."""
    return (state.content, state.kind, state.tags, state.importance)


__all__ = ["Accepted", "Duplicate", "Gate", "Held", "Limits", "MemoryHistory", "RateLimiter"]

_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int = 64 * 1024
    max_content_chars: int = 16_000
    max_tags: int = 64
    max_tag_chars: int = 64
    #: Sustained events per second one instance may propose, and the burst above it.
    rate_per_instance: float = 1000.0
    rate_burst: float = 5000.0


class RateLimiter:
    """A token bucket per key (an agent instance). Pure: the caller passes the time."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, key: tuple[str, str], now: float) -> bool:
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


@dataclass
class MemoryHistory:
    """What the gate knows of one memory: its document and the events in it."""

    doc: MemoryDoc = field(default_factory=MemoryDoc)
    event_seqs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    record: LogRecord
    doc: MemoryDoc


@dataclass(frozen=True)
class Duplicate:
    event: MemoryEvent
    seq: int


@dataclass(frozen=True)
class Held:
    """Every check passed, but ``require_approval`` laws ask a principal first."""

    event: MemoryEvent
    laws: tuple[LawResult, ...]
    verdict: Verdict


class Gate:
    """The pure judge of proposed events.

    ``keys``: the swarm's keystore. With it, sealed content is opened for the checks
    and laws (a key that is unknown, erased or another memory's is refused) and,
    unless ``require_sealed`` is False, plain-text content is refused: text that
    enters the log in the clear could never be erased from it.
    """

    def __init__(
        self,
        swarm: str,
        laws: LawSet,
        limits: Limits | None = None,
        *,
        keys: Keystore | None = None,
        require_sealed: bool = True,
    ) -> None:
        self.swarm = swarm
        self.laws = laws
        self.limits = limits or Limits()
        self.keys = keys
        self.require_sealed = require_sealed and keys is not None

    def opened(self, event: MemoryEvent, state: MemoryState) -> MemoryState:
        """``state`` with its content opened (plain text as it is). SealError if sealed
        content does not open: unknown or erased key, another memory's or writer's key."""
        keys = self.keys
        if keys is None or key_id_of(state.content) is None:
            return state
        text = keys.open(state.content, event.memory_id)
        entry = keys.lookup(str(key_id_of(state.content)))
        if isinstance(event, MemoryRemembered) and entry is not None and entry.agent != event.agent:
            raise SealError(f"key {entry.key_id} was issued to another agent")
        return replace(state, content=text)

    # -- phase 1: before the memory is looked up ---------------------------------------

    def parse(
        self,
        raw: bytes,
        agent: str,
        instance: str,
        *,
        registry: Mapping[str, AgentEntry] | None = None,
    ) -> MemoryEvent:
        """Size, schema and envelope identity. Raises a Rejected subclass.

        ``registry`` holds the registered agents that appear in this batch, or is
        None while the swarm has no registered agent (open mode: no signatures).
        """
        if len(raw) > self.limits.max_event_bytes:
            raise SizeLimitExceeded(
                f"event is {len(raw)} bytes; the limit is {self.limits.max_event_bytes}"
            )
        event = decode_proposal(raw)
        if event.swarm != self.swarm:
            raise IdentityError(f"event is for swarm {event.swarm!r}, this is {self.swarm!r}")
        if (event.agent, event.instance) != (agent, instance):
            raise IdentityError(
                f"published on the inbox of {agent}@{instance} but signed as "
                f"{event.agent}@{event.instance}: an instance may only write as itself"
            )
        if event.actor[:16] != instance_tag(self.swarm, agent, instance).hex():
            raise IdentityError(
                f"Automerge actor {event.actor} does not belong to {agent}@{instance}"
            )
        if registry is not None:
            self._check_signature(event, registry)
        return event

    @staticmethod
    def _check_signature(event: MemoryEvent, registry: Mapping[str, AgentEntry]) -> None:
        entry = registry.get(event.agent)
        if entry is None:
            raise IdentityError(
                f"agent {event.agent!r} is not registered in this swarm (swarm agents add)"
            )
        if entry.revoked_at is not None:
            raise IdentityError(
                f"agent {event.agent!r} was revoked at {entry.revoked_at.isoformat()}"
            )
        if not event.signature:
            raise IdentityError(
                "unsigned event: this swarm requires signed envelopes (load the agent's "
                "credentials file)"
            )
        if not verify(event, entry.public_key):
            raise IdentityError(f"bad signature: not signed by agent {event.agent!r}'s key")

    # -- phase 2: with the memory's history ----------------------------------------------

    def judge(
        self,
        event: MemoryEvent,
        history: MemoryHistory,
        *,
        approved_by: str | None = None,
        related: tuple[Related, ...] = (),
    ) -> Accepted | Duplicate | Held:
        """Change, scope and laws. Raises a Rejected subclass.

        A violated ``require_approval`` law holds the event (:class:`Held`) unless
        ``approved_by`` names the principal who approved it: then it is accepted,
        the verdict recording those laws as ``pending`` and the approver.
        """
        if event.id in history.event_seqs:
            return Duplicate(event, history.event_seqs[event.id])
        chunks = change_chunks(event.change)
        if len(chunks) != 1 or chunks[0] not in (1, 2):
            raise ChangeError(
                f"an event must carry exactly one Automerge change, not {len(chunks)} chunk(s)"
                + (" (a whole document?)" if 0 in chunks else "")
            )
        before = history.doc.state()
        if isinstance(event, MemoryRemembered) and before is not None:
            # Before applying: a second creation by the same actor would otherwise be
            # refused as a reused change sequence, which says less.
            raise ChangeError(f"memory {event.memory_id} already exists")
        doc, new = history.doc.apply(event.change, strict=True)
        if not new:
            raise ChangeError("this change is already in the log under another event id")
        strangers = sorted({c.actor for c in new if c.actor != event.actor})
        if strangers:
            raise IdentityError(
                f"the change was made by actor {strangers[0]}, not the envelope's {event.actor}"
            )
        after = doc.state()
        if after is None:  # pragma: no cover - a non-empty change always yields state
            raise ChangeError("the change leaves the memory empty")
        # New plain text: a creation or a content change whose text is not sealed.
        plain = key_id_of(after.content) is None and (
            before is None or after.content != before.content
        )
        before = None if before is None else self.opened(event, before)
        after = self.opened(event, after)
        self._check_shape(event, before, after)
        self._check_transition(event, before, after)
        if before is not None and before.private and before.agent != event.agent:
            raise Rejected(
                f"memory {event.memory_id} is private to agent {before.agent}", check="scope"
            )
        if plain and self.require_sealed and event.type_name != "memory.restored":
            raise SealError(
                "content must be sealed with the memory's key from this service (the SDK "
                "does it): plain text in the log could never be erased"
            )
        judgement = self.laws.judge(
            Proposal(event=event, before=before, after=after, related=related)
        )
        if judgement.violation is not None:
            law, outcome = judgement.violation
            raise LawViolation(
                outcome.reason or law.description,
                law=law.id,
                event_id=event.id,
                where=outcome.where,
            )
        asked = tuple(
            LawResult(law=p.law, verdict="pending", reason=p.reason) for p in judgement.pending
        )
        if asked and approved_by is None:
            return Held(event, asked, Verdict(law_set=self.laws.version, results=judgement.results))
        verdict = Verdict(
            law_set=self.laws.version,
            results=judgement.results + asked,
            approved_by=approved_by if asked else None,
        )
        return Accepted(LogRecord(event=event, verdict=verdict), doc)

    def _check_shape(
        self, event: MemoryEvent, before: MemoryState | None, after: MemoryState
    ) -> None:
        lim = self.limits
        if after.id != event.memory_id:
            raise ChangeError("the change edits another memory than the event names")
        if not after.content.strip():
            raise ChangeError("content must not be empty")
        if len(after.content) > lim.max_content_chars:
            raise SizeLimitExceeded(
                f"content is {len(after.content)} characters; the limit is {lim.max_content_chars}"
            )
        if not _KIND.match(after.kind):
            raise ChangeError("kind must be 1-32 lower-case letters, digits, '-' or '_'")
        if not 0.0 <= after.importance <= 1.0:
            raise ChangeError(f"importance must be between 0 and 1, not {after.importance}")
        if len(after.tags) > lim.max_tags:
            raise ChangeError(f"{len(after.tags)} tags; the limit is {lim.max_tags}")
        for tag in after.tags:
            if not tag.strip() or len(tag) > lim.max_tag_chars:
                raise ChangeError(f"tags must be 1..{lim.max_tag_chars} characters")

    def _check_transition(  # noqa: PLR0912 - one branch per rule reads best
        self, event: MemoryEvent, before: MemoryState | None, after: MemoryState
    ) -> None:
        if isinstance(event, MemoryRemembered):
            if before is not None:
                raise ChangeError(f"memory {event.memory_id} already exists")
            if (after.agent, after.instance) != (event.agent, event.instance):
                raise IdentityError("a new memory must name its own writer as agent and instance")
            if after.forgotten or after.recall:
                raise ChangeError("a new memory starts unforgotten, with no recalls")
            return
        if before is None:
            raise ChangeError(f"memory {event.memory_id} does not exist")
        if before.forgotten:
            raise ChangeError(f"memory {event.memory_id} is forgotten and cannot change")
        for name in ("id", "agent", "instance", "created_at", "private"):
            if getattr(before, name) != getattr(after, name):
                raise ChangeError(f"field {name!r} is fixed when a memory is created")
        self._check_recall(event, before, after)
        if isinstance(event, MemoryForgotten):
            if not after.forgotten:
                raise ChangeError("a memory.forgotten event must set the tombstone")
            if after.forgotten_reason != event.reason:
                raise ChangeError("the tombstone's reason must be the event's reason")
            if _core(after) != _core(before):
                raise ChangeError("memory.forgotten may only set the tombstone")
        elif after.forgotten or after.forgotten_reason != before.forgotten_reason:
            raise ChangeError(f"only memory.forgotten may forget; this is {event.type_name}")
        if isinstance(event, MemoryReinforced) and _core(after) != _core(before):
            raise ChangeError("memory.reinforced must only add one to the recall count")

    @staticmethod
    def _check_recall(event: MemoryEvent, before: MemoryState, after: MemoryState) -> None:
        """Recall counters: only reinforce moves one, the writer's own, by exactly one."""
        changed = {
            k
            for k in before.recall.keys() | after.recall.keys()
            if before.recall.get(k) != after.recall.get(k)
        }
        if any(k != event.actor for k in changed):
            raise IdentityError("a writer may only advance its own recall counter")
        if not isinstance(event, MemoryReinforced):
            if changed:
                raise ChangeError("only memory.reinforced may change the recall count")
            return
        own = event.actor
        if after.recall.get(own, 0) != before.recall.get(own, 0) + 1:
            raise ChangeError("memory.reinforced must add exactly one to the recall count")

    # -- records ------------------------------------------------------------------------

    @staticmethod
    def rejection(
        err: Rejected,
        *,
        event: MemoryEvent | None,
        event_id: str,
        agent: str | None,
        instance: str | None,
    ) -> RejectionRecord:
        """The audit record of a refusal: who, what check, why — never the content."""
        return RejectionRecord(
            event_id=event.id if event is not None else event_id,
            type=event.type_name if event is not None else None,
            agent=agent,
            instance=instance,
            memory_id=event.memory_id if event is not None else None,
            check=err.check,
            kind="law" if isinstance(err, LawViolation) else "check",
            reason=err.reason,
            where=err.where if isinstance(err, LawViolation) else None,
        )
