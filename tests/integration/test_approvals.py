"""Approvals and laws as log records, on real parts: nats-server -js, gate, DuckDB.

A ``require_approval`` law holds a write as a proposal; a principal approves or
denies it, or it expires; each step is a record in the log. Laws given to the
service are enacted in the log; restarts keep them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from projections.service import SwarmService
from swarm.approvals import ADMIN
from swarm.client import SwarmClient
from swarm.codec import decode_log_entry, encode
from swarm.errors import Forbidden, NotFound, Rejected, SwarmError
from swarm.events import LogRecord, MemoryEvent
from swarm.gatekeeper import REPLY_HEADER
from swarm.identity import AgentEntry
from swarm.jetstream import JetStreamLog
from swarm.laws import LawSpec, build_law_set, default_specs

pytestmark = pytest.mark.integration

ASK = LawSpec.model_validate(
    {"id": "ask-before-forgetting", "kind": "destructive", "action": "require_approval"}
)
SHORT = LawSpec.model_validate({"id": "short", "kind": "max_content", "params": {"chars": 200}})


def laws(*specs: LawSpec):
    return build_law_set([*default_specs(), *specs], allow_approval=True)


def service(nats_url: str, swarm: str, data: Path, *specs: LawSpec, ttl: float = 3600.0):
    return SwarmService(
        nats_url,
        swarm=swarm,
        data_dir=data,
        laws=laws(*specs) if specs else None,
        approval_ttl=ttl,
    )


async def client(nats_url: str, swarm: str, agent: str) -> SwarmClient:
    return await SwarmClient.connect(nats_url, swarm=swarm, agent=agent, instance="one")


@contextlib.asynccontextmanager
async def agents(nats_url: str, swarm: str) -> AsyncIterator[tuple[SwarmClient, SwarmClient]]:
    """Two agents of the swarm: alice writes memories, bob forgets them."""
    alice, bob = await client(nats_url, swarm, "alice"), await client(nats_url, swarm, "bob")
    try:
        yield alice, bob
    finally:
        await asyncio.gather(alice.close(), bob.close())


async def log_types(svc: SwarmService) -> list[str]:
    assert svc.log is not None
    out = []
    async for batch in svc.log.read():
        for m in batch:
            entry = decode_log_entry(m.subject, m.data)
            out.append(entry.event.type_name if isinstance(entry, LogRecord) else entry.type)
    return out


async def test_a_held_forget_waits_for_approval_then_takes_effect(nats_url, swarm_name, tmp_path):
    async with (
        service(nats_url, swarm_name, tmp_path, ASK) as svc,
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        made = await alice.remember("The staging cluster is shared with QA")
        held = await bob.forget(made.id, reason="stale")
        assert held.status == "pending"
        assert held.proposal == held.event_id
        assert [f.law for f in held.flags] == ["ask-before-forgetting"]
        # Not in effect: the memory is as it was.
        memory = await alice.get(made.id, after=held.seq)
        assert memory["forgotten"] is False
        # Bob keeps working on the memory: a new actor, so no clash with the held change.
        again = await bob.reinforce(made.id)
        assert again.status == "accepted"

        pending = await alice.approvals()
        assert [p["proposal"] for p in pending] == [held.proposal]
        assert pending[0]["agent"] == "bob" and pending[0]["type"] == "memory.forgotten"
        status = await alice.status()
        assert status["pending_approvals"] == 1 or status["projected_seq"] < held.seq

        row = await alice.approve(held.proposal, reason="confirmed stale")
        assert row["status"] == "approved" and row["decided_by"] == "alice"
        memory = await alice.get(made.id, after=row["event_seq"])
        assert memory["forgotten"] is True and memory["recall_count"] == 1
        assert await alice.approvals() == []
        with pytest.raises(SwarmError, match="already approved"):
            await alice.deny(held.proposal)
        # A retried approval by the same principal gets the same answer, nothing new.
        again = await alice.approve(held.proposal)
        assert again["event_seq"] == row["event_seq"] and again["status"] == "approved"

        types = await log_types(svc)
        assert types == [
            "law.enacted",
            "law.enacted",
            "memory.remembered",
            "proposal.opened",
            "memory.reinforced",
            "memory.forgotten",
            "proposal.decided",
        ]
        versions = (await alice.history(made.id, after=row["event_seq"]))["versions"]
        assert [v["type"] for v in versions][-1] == "memory.forgotten"
        await asyncio.sleep(0)  # the status count settles with the projection
        status = await alice.status()
        assert status["pending_approvals"] == 0 or status["projected_seq"] < row["event_seq"]


async def test_a_denied_proposal_never_enters_the_memory(nats_url, swarm_name, tmp_path):
    async with (
        service(nats_url, swarm_name, tmp_path, ASK),
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        made = await alice.remember("Backups run nightly at 02:00")
        held = await bob.forget(made.id)
        row = await alice.deny(held.proposal, reason="still true")
        assert row["status"] == "denied" and row["reason"] == "still true"
        assert (await alice.get(made.id, after=held.seq))["forgotten"] is False
        denied = await alice.approvals(status="denied")
        assert [p["proposal"] for p in denied] == [held.proposal]
        with pytest.raises(NotFound):
            await alice.approve("NOSUCHPROPOSAL0")


async def test_a_proposal_expires_and_can_no_longer_be_approved(nats_url, swarm_name, tmp_path):
    async with (
        service(nats_url, swarm_name, tmp_path, ASK, ttl=0.5),
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        made = await alice.remember("The VPN config lives in the ops repo")
        held = await bob.forget(made.id)
        for _ in range(50):
            if await alice.approvals(status="expired"):
                break
            await asyncio.sleep(0.1)
        expired = await alice.approvals(status="expired")
        assert [p["proposal"] for p in expired] == [held.proposal]
        assert expired[0]["decided_by"] == "gate"
        with pytest.raises(SwarmError, match="already expired"):
            await alice.approve(held.proposal)
        assert (await alice.get(made.id))["forgotten"] is False


async def test_once_agents_are_registered_only_approvers_decide(nats_url, swarm_name, tmp_path):
    async with (
        service(nats_url, swarm_name, tmp_path, ASK) as svc,
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        made = await alice.remember("Release notes go out on Fridays")
        held = await bob.forget(made.id)
        log = svc.log
        assert isinstance(log, JetStreamLog) and svc.gate is not None
        # Registering agents turns identities on (their writes must now be signed;
        # decisions are asked with the requester the transport vouches for).
        await log.put_agent(AgentEntry(agent="alice", public_key="a" * 44))
        await log.put_agent(AgentEntry(agent="bob", public_key="b" * 44, roles=("approver",)))
        with pytest.raises(Forbidden, match="needs the role 'approver'"):
            await alice.approve(held.proposal)
        with pytest.raises(Forbidden, match="another principal must decide"):
            await bob.approve(held.proposal)
        row = await svc.gate.decide(held.proposal, principal=ADMIN, approve=True)
        assert row["status"] == "approved" and row["decided_by"] == ADMIN


async def resend(sender: SwarmClient, event: MemoryEvent) -> dict:
    """Publish ``event`` again, as a client retry does, and return the gate's receipt."""
    reply = sender.log.nc.new_inbox()
    sub = await sender.log.nc.subscribe(reply, max_msgs=1)
    await sender.log.propose(
        event.agent, event.instance, encode(event), event_id=event.id, headers={REPLY_HEADER: reply}
    )
    msg = await sub.next_msg(timeout=10)
    return json.loads(msg.data)


async def test_a_retried_held_event_stays_pending_and_a_denied_one_is_refused(
    nats_url, swarm_name, tmp_path
):
    async with (
        service(nats_url, swarm_name, tmp_path, ASK) as svc,
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        made = await alice.remember("The on-call phone rotates weekly")
        held = await bob.forget(made.id)
        assert svc.gate is not None
        state = svc.gate.proposals.get(held.proposal)
        assert state is not None
        event = state.opened.event

        again = await resend(bob, event)
        assert again["status"] == "pending" and again["seq"] == held.seq
        assert len(svc.gate.proposals) == 1

        await alice.deny(held.proposal, reason="keep it")
        refused = await resend(bob, event)
        assert refused["ok"] is False
        assert refused["error"]["check"] == "approval"
        assert "denied by alice: keep it" in refused["error"]["reason"]
        assert (await alice.get(made.id))["forgotten"] is False


async def test_laws_are_enacted_in_the_log_and_kept_across_restarts(nats_url, swarm_name, tmp_path):
    async with service(nats_url, swarm_name, tmp_path, SHORT) as svc:
        c = await client(nats_url, swarm_name, "alice")
        try:
            current = await c.laws()
            assert [law["id"] for law in current["laws"]] == ["no-private-data", "short"]
            receipt = await c.remember("a short memory")
            assert svc.gate is not None
            assert current["law_set"] == svc.gate.gate.laws.version
            history = await c.law_history()
            assert [(h["change"], h["law"], h["by"]) for h in history] == [
                ("enacted", "no-private-data", "operator"),
                ("enacted", "short", "operator"),
            ]
            assert receipt.seq > history[-1]["seq"]
        finally:
            await c.close()
    # No laws given: the log's laws stay in force.
    async with service(nats_url, swarm_name, tmp_path) as svc:
        c = await client(nats_url, swarm_name, "alice")
        try:
            assert [law["id"] for law in (await c.laws())["laws"]] == ["no-private-data", "short"]
            assert len(await c.law_history()) == 2
            with pytest.raises(Rejected) as info:
                await c.remember("x" * 300)
            assert info.value.check == "short"
        finally:
            await c.close()
    # Other laws given: the change is recorded (repeal, enact), the new set enforced.
    async with service(nats_url, swarm_name, tmp_path, ASK) as svc:
        c = await client(nats_url, swarm_name, "alice")
        try:
            history = await c.law_history()
            assert [(h["change"], h["law"]) for h in history[2:]] == [
                ("repealed", "short"),
                ("enacted", "ask-before-forgetting"),
            ]
            assert (await c.remember("y" * 300)).status == "accepted"
            assert svc.gate is not None
            assert history[-1]["law_set"] == svc.gate.gate.laws.version
        finally:
            await c.close()


async def test_pending_proposals_survive_a_restart(nats_url, swarm_name, tmp_path):
    async with service(nats_url, swarm_name, tmp_path, ASK):
        alice, bob = (
            await client(nats_url, swarm_name, "alice"),
            await client(nats_url, swarm_name, "bob"),
        )
        made = await alice.remember("The wiki moved to the new host")
        held = await bob.forget(made.id)
        await asyncio.gather(alice.close(), bob.close())
    async with service(nats_url, swarm_name, tmp_path, ASK):
        alice = await client(nats_url, swarm_name, "alice")
        try:
            assert [p["proposal"] for p in await alice.approvals()] == [held.proposal]
            row = await alice.approve(held.proposal)
            assert (await alice.get(made.id, after=row["event_seq"]))["forgotten"] is True
        finally:
            await alice.close()


ESCALATE = LawSpec.model_validate({"id": "escalate-when-uncertain", "kind": "contradiction"})


async def test_a_write_contradicting_another_agents_memory_is_accepted_and_flagged(
    nats_url, swarm_name, tmp_path
):
    async with (
        service(nats_url, swarm_name, tmp_path, ESCALATE),
        agents(nats_url, swarm_name) as (alice, bob),
    ):
        first = await alice.remember("The deploy key rotates on Mondays", tags=["ops"])
        await alice.get(first.id, after=first.seq)  # in the projection, so recall finds it
        unrelated = await bob.remember("Lunch is served at noon in the atrium")
        assert unrelated.flags == ()
        clash = await bob.remember("The deploy key rotates on Fridays")
        assert clash.status == "accepted"
        assert [f.law for f in clash.flags] == ["escalate-when-uncertain"]
        assert first.id in (clash.flags[0].reason or "")
        # Bob corrects himself: his own old memory is not a contradiction; Alice's agrees.
        await bob.get(clash.id, after=clash.seq)
        fixed = await bob.update(clash.id, content="The deploy key rotates on Mondays")
        assert fixed.flags == ()
