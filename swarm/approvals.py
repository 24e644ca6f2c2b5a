"""Proposals held for approval, as the log records them. Pure: the gate does the I/O.

A ``require_approval`` law holds a proposed event instead of rejecting it: the
gate writes a ``proposal.opened`` record (the whole signed event, the laws that
asked, when it expires) to ``swarm.<swarm>.sys.proposals.<id>``, and the memory
does not change. An authorised principal approves or denies it; the gate
expires it when its time is up. Each decision is a ``proposal.decided`` record;
an approved event enters the log as any other, its verdict naming the approver.

Who may decide (see :func:`authorise`): the swarm's admin; once agents are
registered, an agent whose registry roles include ``approver`` or ``admin`` and
who did not propose it. In open mode (no registered agent) every caller may:
there are no identities to tell principals apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from swarm.auth import ADMIN
from swarm.errors import Forbidden
from swarm.events import ProposalDecided, ProposalOpened
from swarm.identity import AgentEntry

__all__ = ["ADMIN", "APPROVER_ROLES", "Decision", "ProposalBook", "ProposalState", "authorise"]

Decision = Literal["approved", "denied", "expired", "failed"]

APPROVER_ROLES = frozenset({"approver", "admin"})


@dataclass
class ProposalState:
    opened: ProposalOpened
    seq: int
    decided: ProposalDecided | None = None
    decided_seq: int | None = None

    @property
    def id(self) -> str:
        return self.opened.proposal

    @property
    def status(self) -> str:
        return "pending" if self.decided is None else self.decided.decision

    @property
    def proposer(self) -> str:
        """Who asked: the held event's agent, or the principal who asked for a rollback."""
        return self.opened.event.agent if self.opened.event is not None else self.opened.by

    def row(self) -> dict[str, Any]:
        event, decided, rollback = self.opened.event, self.decided, self.opened.rollback
        return {
            "proposal": self.id,
            "status": self.status,
            "type": event.type_name if event is not None else "rollback",
            "memory_id": event.memory_id if event is not None else rollback and rollback.memory_id,
            "agent": event.agent if event is not None else self.opened.by,
            "instance": event.instance if event is not None else None,
            "rollback": rollback.model_dump() if rollback is not None else None,
            "laws": [r.model_dump() for r in self.opened.laws],
            "opened_seq": self.seq,
            "opened_at": self.opened.at.isoformat(),
            "expires_at": self.opened.expires_at.isoformat(),
            "decided_by": decided.by if decided else None,
            "decided_at": decided.at.isoformat() if decided else None,
            "reason": decided.reason if decided else None,
            "event_seq": decided.event_seq if decided else None,
        }


class ProposalBook:
    """Every proposal of a swarm, by id, folded from its log records."""

    def __init__(self) -> None:
        self._all: dict[str, ProposalState] = {}

    def __len__(self) -> int:
        return len(self._all)

    def apply(self, seq: int, record: ProposalOpened | ProposalDecided) -> None:
        if isinstance(record, ProposalOpened):
            self._all.setdefault(record.proposal, ProposalState(record, seq))
            return
        state = self._all.get(record.proposal)
        if state is not None and state.decided is None:
            state.decided, state.decided_seq = record, seq

    def get(self, proposal: str) -> ProposalState | None:
        return self._all.get(proposal)

    def pending(self) -> list[ProposalState]:
        return [s for s in self._all.values() if s.decided is None]

    def expired(self, now: datetime) -> list[ProposalState]:
        return [s for s in self.pending() if s.opened.expires_at <= now]

    def rows(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Proposals oldest first; ``status`` None for all of them."""
        states = sorted(self._all.values(), key=lambda s: s.seq)
        return [s.row() for s in states if status is None or s.status == status]


def authorise(
    principal: str, state: ProposalState, *, entry: AgentEntry | None, secured: bool
) -> None:
    """Raise Forbidden unless ``principal`` may decide this proposal."""
    if principal == ADMIN or not secured:
        return
    if entry is None or entry.revoked_at is not None:
        raise Forbidden(f"{principal!r} is not an active agent of this swarm")
    if not APPROVER_ROLES & set(entry.roles):
        raise Forbidden(
            f"agent {principal!r} may not decide proposals: it needs the role 'approver' "
            "(swarm agents add NAME --role approver) or the admin credentials"
        )
    if principal == state.proposer:
        raise Forbidden(f"agent {principal!r} proposed {state.id}: another principal must decide")
