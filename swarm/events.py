"""Events: the immutable facts of the log, as frozen pydantic models.

A *proposal* is what an agent instance publishes to its inbox: one of the
memory event types below, each carrying exactly one Automerge change. The gate
wraps an accepted proposal in a :class:`LogRecord` (the event plus the gate's
verdict) and appends it to the log; a refused one becomes a
:class:`RejectionRecord`, with the content withheld.

Type names (``memory.remembered`` …) and field names are a stable wire format:
a change of shape gets a new ``schema_version`` and an upcaster in
:mod:`swarm.codec`; stored bytes are never rewritten.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from swarm.errors import ConfigError

__all__ = [
    "EVENT_TYPES",
    "NAME_PATTERN",
    "Event",
    "LawEnacted",
    "LawRepealed",
    "LawResult",
    "LogRecord",
    "MemoryErased",
    "MemoryEvent",
    "MemoryForgotten",
    "MemoryReinforced",
    "MemoryRemembered",
    "MemoryRestored",
    "MemoryUpdated",
    "ProposalDecided",
    "ProposalOpened",
    "Receipt",
    "RejectionRecord",
    "RollbackSpec",
    "SystemRecord",
    "Verdict",
    "new_id",
    "parse_time",
    "utcnow",
]

#: Agent, instance and swarm names: lower-case, safe inside a NATS subject token.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_PATTERN = r"^[0-9A-Za-z_-]{8,64}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
ActorHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A 26-character, time-ordered, random identifier (ULID layout)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` allowed); a time without a zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither a log sequence nor an ISO-8601 time (2026-11-20T09:00:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def is_valid_name(value: str) -> bool:
    return re.fullmatch(NAME_PATTERN, value) is not None


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )


class Event(_Frozen):
    """Envelope fields shared by every event a client proposes."""

    type_name: ClassVar[str]

    schema_version: Literal[1] = 1
    id: Identifier = Field(default_factory=new_id, description="event id; also the Nats-Msg-Id")
    swarm: Name
    agent: Name
    instance: Name
    actor: ActorHex = Field(description="Automerge actor id of the writing process (hex)")
    at: datetime = Field(default_factory=utcnow, description="when the client proposed it")
    signature: str | None = Field(
        default=None,
        max_length=200,
        description="ed25519 signature of the envelope by the agent's key (base64)",
    )


class MemoryEvent(Event):
    """An event that changes one memory document by one Automerge change."""

    memory_id: Identifier
    change: bytes = Field(description="exactly one Automerge change (binary, base64 in JSON)")


class MemoryRemembered(MemoryEvent):
    """A new memory: the change creates its document."""

    type_name: ClassVar[str] = "memory.remembered"
    type: Literal["memory.remembered"] = "memory.remembered"


class MemoryUpdated(MemoryEvent):
    """Content, tags or importance changed."""

    type_name: ClassVar[str] = "memory.updated"
    type: Literal["memory.updated"] = "memory.updated"


class MemoryReinforced(MemoryEvent):
    """The memory was recalled or confirmed: its recall count grows by one."""

    type_name: ClassVar[str] = "memory.reinforced"
    type: Literal["memory.reinforced"] = "memory.reinforced"


class MemoryForgotten(MemoryEvent):
    """The memory is retired: a tombstone; its history stays in the log."""

    type_name: ClassVar[str] = "memory.forgotten"
    type: Literal["memory.forgotten"] = "memory.forgotten"
    reason: str | None = Field(default=None, max_length=1000)


#: The writer of compensating changes (a rollback): never an agent's name.
GATE_WRITER = "_gate"


class MemoryRestored(MemoryEvent):
    """A compensating change written by the gate: part of an approved rollback.

    Never proposed by an agent (the inbox refuses the type); its writer is the gate
    (``agent`` ``_gate``) and ``reason`` names the rollback's proposal and why.
    """

    type_name: ClassVar[str] = "memory.restored"
    type: Literal["memory.restored"] = "memory.restored"
    agent: Annotated[str, StringConstraints(pattern=r"^_?[a-z0-9][a-z0-9_-]{0,63}$")]
    reason: str | None = Field(default=None, max_length=1000)
    proposal: str = Field(description="the approved rollback proposal")


MEMORY_EVENTS: tuple[type[MemoryEvent], ...] = (
    MemoryRemembered,
    MemoryUpdated,
    MemoryReinforced,
    MemoryForgotten,
)
EVENT_TYPES: dict[str, type[MemoryEvent]] = {cls.type_name: cls for cls in MEMORY_EVENTS}


class LawResult(_Frozen):
    """One law's answer for one event."""

    law: str
    verdict: Literal["pass", "flag", "reject", "pending"]
    reason: str | None = None


class Verdict(_Frozen):
    """What the gate decided, attached to every accepted event."""

    law_set: str = Field(description="version of the law set the event was checked against")
    results: tuple[LawResult, ...] = ()
    approved_by: str | None = Field(
        default=None, description="the principal who approved it, for an event held for approval"
    )

    @property
    def flags(self) -> tuple[LawResult, ...]:
        return tuple(r for r in self.results if r.verdict == "flag")


PREV_DESCRIPTION = (
    "sha256 (hex) of the previous LOG entry's stored bytes: the entries form a hash chain "
    "(None only for the log's first entry; see swarm.audit)"
)

SEQ_DESCRIPTION = "the LOG sequence the gate wrote this entry at (so a moved entry shows)"

AnyMemoryEvent = Annotated[
    MemoryRemembered | MemoryUpdated | MemoryReinforced | MemoryForgotten,
    Field(discriminator="type"),
]
LoggedEvent = Annotated[
    MemoryRemembered | MemoryUpdated | MemoryReinforced | MemoryForgotten | MemoryRestored,
    Field(discriminator="type"),
]


class LogRecord(_Frozen):
    """The body of one message in the LOG stream."""

    schema_version: Literal[1] = 1
    event: LoggedEvent
    verdict: Verdict
    accepted_at: datetime = Field(default_factory=utcnow)
    seq: int | None = Field(default=None, description=SEQ_DESCRIPTION)
    prev: str | None = Field(default=None, description=PREV_DESCRIPTION)


# -- system records: what the service itself writes to the log ----------------------------
#
# They live on ``swarm.<swarm>.sys.>`` subjects of the LOG stream, in log order with the
# memory events, so a replay sees a law change or an approval exactly where it happened.


class _SystemRecord(_Frozen):
    schema_version: Literal[1] = 1
    id: Identifier = Field(default_factory=new_id, description="record id; also the Nats-Msg-Id")
    by: str = Field(description="the principal (or the gate) that caused it")
    at: datetime = Field(default_factory=utcnow)
    seq: int | None = Field(default=None, description=SEQ_DESCRIPTION)
    prev: str | None = Field(default=None, description=PREV_DESCRIPTION)


class RollbackSpec(_Frozen):
    """What a rollback restores: everything, one memory, or one agent's writes, as of a seq."""

    to_seq: int = Field(ge=0, description="restore the state as of this log sequence")
    scope: Literal["swarm", "memory", "agent"] = "swarm"
    memory_id: Identifier | None = None
    agent: Name | None = None
    reason: str = Field(min_length=1, max_length=1000)


class ProposalOpened(_SystemRecord):
    """A proposal held until a principal decides: a proposed event a ``require_approval``
    law asked about, or a rollback (always destructive, always decided by a principal)."""

    type: Literal["proposal.opened"] = "proposal.opened"
    proposal: Identifier = Field(description="the proposal id: the held event's id")
    event: AnyMemoryEvent | None = None
    rollback: RollbackSpec | None = None
    laws: tuple[LawResult, ...] = Field(description="the laws that asked for approval")
    verdict: Verdict = Field(description="what the other laws said")
    expires_at: datetime


class ProposalDecided(_SystemRecord):
    """Approval, denial or expiry of a proposal (``failed``: it no longer applies)."""

    type: Literal["proposal.decided"] = "proposal.decided"
    proposal: Identifier
    memory_id: Identifier | None = None
    decision: Literal["approved", "denied", "expired", "failed"]
    reason: str | None = Field(default=None, max_length=1000)
    event_seq: int | None = Field(
        default=None, description="where the approved event entered the log"
    )


class LawEnacted(_SystemRecord):
    """A law enacted, or changed (enacted again under the same id)."""

    type: Literal["law.enacted"] = "law.enacted"
    law: dict[str, Any] = Field(description="the law's spec: id, kind, params, action, scope")
    law_set: str = Field(description="the law-set version from this record on")
    order: tuple[str, ...] = Field(description="the ids of the laws in force, in run order")


class LawRepealed(_SystemRecord):
    type: Literal["law.repealed"] = "law.repealed"
    law_id: str
    law_set: str = Field(description="the law-set version from this record on")
    order: tuple[str, ...] = Field(description="the ids of the laws in force, in run order")


class MemoryErased(_SystemRecord):
    """The tombstone of an erasure: who, when, why, and which memories' keys were
    destroyed. It names no data subject and quotes no content (see swarm.keystore)."""

    type: Literal["memory.erased"] = "memory.erased"
    memories: tuple[Identifier, ...] = Field(min_length=1, max_length=100_000)
    keys: tuple[str, ...] = Field(description="the key ids destroyed")
    reason: str = Field(min_length=1, max_length=1000)
    about: bool = Field(
        default=False, description="a named data subject's erasure (the name is not kept)"
    )


SystemRecord = Annotated[
    ProposalOpened | ProposalDecided | LawEnacted | LawRepealed | MemoryErased,
    Field(discriminator="type"),
]


class RejectionRecord(_Frozen):
    """An audit record of a refused event. The content is never stored."""

    schema_version: Literal[1] = 1
    event_id: str
    type: str | None = None
    agent: str | None = None
    instance: str | None = None
    memory_id: str | None = None
    check: str = Field(description="the failed check, or the law id")
    kind: Literal["check", "law"]
    reason: str
    where: str | None = Field(default=None, description="where it matched, never the match")
    at: datetime = Field(default_factory=utcnow)


class Receipt(_Frozen):
    """What a writer gets back once its event is in the log."""

    id: str = Field(description="the memory id")
    seq: int = Field(description="log sequence of the accepted event")
    event_id: str
    duplicate: bool = Field(default=False, description="a retry of an already accepted event")
    flags: tuple[LawResult, ...] = ()
    status: Literal["accepted", "pending"] = Field(
        default="accepted",
        description="pending: held for approval; seq is then the proposal's record",
    )
    proposal: str | None = Field(default=None, description="the proposal id, when pending")
