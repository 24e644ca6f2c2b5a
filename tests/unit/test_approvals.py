"""Proposals held for approval: the book folded from records, and who may decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from swarm.approvals import ADMIN, ProposalBook, ProposalState, authorise
from swarm.crdt import new_actor
from swarm.errors import Forbidden
from swarm.events import (
    LawResult,
    MemoryForgotten,
    ProposalDecided,
    ProposalOpened,
    Verdict,
)
from swarm.identity import AgentEntry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MID = "01HZZZMEMORY0000000000001"


def opened(event_id: str, *, agent: str = "bob", ttl: float = 60.0) -> ProposalOpened:
    event = MemoryForgotten(
        id=event_id,
        swarm="s",
        agent=agent,
        instance="one",
        actor=new_actor("s", agent, "one").hex(),
        memory_id=MID,
        change=b"\x00",
    )
    return ProposalOpened(
        proposal=event.id,
        event=event,
        laws=(LawResult(law="ask", verdict="pending", reason="forgets another's memory"),),
        verdict=Verdict(law_set="1:x"),
        expires_at=NOW + timedelta(seconds=ttl),
        by=agent,
        at=NOW,
    )


def decided(proposal: str, decision: str = "approved", by: str = ADMIN) -> ProposalDecided:
    return ProposalDecided.model_validate(
        {"proposal": proposal, "memory_id": MID, "decision": decision, "by": by}
    )


def test_the_book_folds_openings_and_first_decisions() -> None:
    book = ProposalBook()
    book.apply(3, opened("PROPOSAL0001"))
    book.apply(4, opened("PROPOSAL0002"))
    book.apply(5, decided("PROPOSAL0001", "denied", by="carol"))
    book.apply(6, decided("PROPOSAL0001", "approved"))  # a second decision changes nothing
    book.apply(7, opened("PROPOSAL0001"))  # nor does a repeated opening

    first = book.get("PROPOSAL0001")
    assert first is not None and first.status == "denied" and first.decided_seq == 5
    assert [s.id for s in book.pending()] == ["PROPOSAL0002"]
    assert [r["proposal"] for r in book.rows()] == ["PROPOSAL0002"]
    assert [r["status"] for r in book.rows(None)] == ["denied", "pending"]
    row = book.rows("denied")[0]
    assert row["decided_by"] == "carol" and row["opened_seq"] == 3
    assert row["laws"][0]["law"] == "ask" and row["type"] == "memory.forgotten"


def test_expired_lists_pending_proposals_past_their_time() -> None:
    book = ProposalBook()
    book.apply(1, opened("PROPOSAL0001", ttl=10))
    book.apply(2, opened("PROPOSAL0002", ttl=100))
    assert book.expired(NOW + timedelta(seconds=5)) == []
    assert [s.id for s in book.expired(NOW + timedelta(seconds=50))] == ["PROPOSAL0001"]


def entry(name: str, *roles: str, revoked: bool = False) -> AgentEntry:
    return AgentEntry(agent=name, public_key="k", roles=roles, revoked_at=NOW if revoked else None)


@pytest.fixture
def state() -> ProposalState:
    return ProposalState(opened("PROPOSAL0001", agent="bob"), seq=1)


def test_admin_and_open_mode_may_decide(state: ProposalState) -> None:
    authorise(ADMIN, state, entry=None, secured=True)
    authorise("anyone", state, entry=None, secured=False)


def test_an_approver_other_than_the_proposer_may_decide(state: ProposalState) -> None:
    authorise("carol", state, entry=entry("carol", "approver"), secured=True)
    authorise("dave", state, entry=entry("dave", "admin"), secured=True)


@pytest.mark.parametrize(
    ("principal", "agent_entry", "message"),
    [
        ("carol", None, "not an active agent"),
        ("carol", entry("carol", "approver", revoked=True), "not an active agent"),
        ("carol", entry("carol"), "needs the role 'approver'"),
        ("bob", entry("bob", "approver"), "another principal must decide"),
    ],
)
def test_others_may_not(
    state: ProposalState, principal: str, agent_entry: AgentEntry | None, message: str
) -> None:
    with pytest.raises(Forbidden, match=message):
        authorise(principal, state, entry=agent_entry, secured=True)
