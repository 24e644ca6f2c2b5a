"""The whole write path on real parts: nats-server -js, gate, DuckDB, LanceDB."""

from __future__ import annotations

import asyncio

import pytest

from swarm.client import SwarmClient
from swarm.errors import ChangeError, LawViolation, NotFound

pytestmark = pytest.mark.integration


@pytest.fixture
async def clients(service, nats_url, swarm_name):
    made = await asyncio.gather(
        SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="cloud"),
        SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="laptop"),
        SwarmClient.connect(nats_url, swarm=swarm_name, agent="ann", instance="desk"),
    )
    yield made
    await asyncio.gather(*(c.close() for c in made))


async def test_remember_returns_receipt_and_get_reads_it_back(clients):
    cloud, _, ann = clients
    receipt = await cloud.remember(
        "The deploy key rotates on Mondays", tags=["ops"], importance=0.7
    )
    assert receipt.seq >= 1
    memory = await ann.get(receipt.id, after=receipt.seq)
    assert memory["content"] == "The deploy key rotates on Mondays"
    assert memory["tags"] == ["ops"]
    assert memory["importance"] == 0.7
    assert memory["agent"] == "brad"
    assert memory["seq"] == receipt.seq
    assert memory["recall_count"] == 0


async def test_concurrent_edits_from_two_instances_merge(clients):
    cloud, laptop, ann = clients
    base = await cloud.remember("Standup is at 9:30", tags=["team"])
    results = await asyncio.gather(
        cloud.update(base.id, content="Standup is at 10:00"),
        laptop.update(base.id, add_tags=["calendar"], remove_tags=["team"]),
        cloud.reinforce(base.id),
        laptop.reinforce(base.id),
        ann.reinforce(base.id),
    )
    memory = await ann.get(base.id, after=max(r.seq for r in results))
    assert memory["content"] == "Standup is at 10:00"
    assert memory["tags"] == ["calendar"]
    assert memory["recall_count"] == 3
    assert memory["version"] == 6


async def test_same_field_edited_concurrently_converges_to_one_value(clients):
    cloud, laptop, ann = clients
    base = await cloud.remember("Lunch is at noon")
    a, b = await asyncio.gather(
        cloud.update(base.id, content="Lunch is at 12:30"),
        laptop.update(base.id, content="Lunch is at 13:00"),
    )
    memory = await ann.get(base.id, after=max(a.seq, b.seq))
    assert memory["content"] in {"Lunch is at 12:30", "Lunch is at 13:00"}
    # The gate's copy (what the next writer builds on) agrees with the projection.
    again = await cloud.update(base.id, importance=0.9)
    assert (await ann.get(base.id, after=again.seq))["content"] == memory["content"]


async def test_private_memory_is_never_returned_to_another_agent(clients):
    cloud, _, ann = clients
    secret = await ann.remember("Ann's private plan for the offsite", private=True)
    public = await cloud.remember("The offsite is in Lisbon", tags=["offsite"])
    after = max(secret.seq, public.seq)
    assert (await ann.get(secret.id, after=after))["private"] is True
    with pytest.raises(NotFound):
        await cloud.get(secret.id, after=after)
    with pytest.raises(NotFound):
        await cloud.history(secret.id)
    ids = [hit["id"] for hit in await cloud.recall("offsite plan", k=10, after=after)]
    assert public.id in ids
    assert secret.id not in ids
    assert secret.id in [hit["id"] for hit in await ann.recall("offsite plan", k=10)]


async def test_another_agent_cannot_write_a_private_memory(clients):
    cloud, _, ann = clients
    secret = await ann.remember("Ann's private note", private=True)
    with pytest.raises(NotFound):  # it cannot even fetch the document to edit
        await cloud.update(secret.id, content="overwritten")


async def test_law_violation_names_the_law_and_never_reaches_the_log(clients):
    cloud, _, ann = clients
    before = await ann.status()
    with pytest.raises(LawViolation) as info:
        await cloud.remember("Card 4111 1111 1111 1111, exp 12/29")
    assert info.value.law == "no-private-data"
    assert "4111" not in str(info.value)
    assert "card" in info.value.reason
    after = await ann.status()
    assert after["log_seq"] == before["log_seq"]
    assert after["rejected"] == before["rejected"] + 1


async def test_recall_filters_by_agent_kind_and_tag(clients):
    cloud, _, ann = clients
    await cloud.remember(
        "Rotate the API gateway certificates quarterly", kind="procedure", tags=["ops"]
    )
    await ann.remember("The gateway certificates expire in March", kind="fact", tags=["ops"])
    last = await ann.remember(
        "Certificates for the gateway are kept in the vault", tags=["security"]
    )
    by_ann = await cloud.recall("gateway certificates", after=last.seq, agent="ann")
    assert by_ann
    assert {h["agent"] for h in by_ann} == {"ann"}
    procedures = await cloud.recall("gateway certificates", kind="procedure")
    assert [h["kind"] for h in procedures] == ["procedure"]
    tagged = await cloud.recall("gateway certificates", tags=["security"])
    assert [h["content"] for h in tagged] == ["Certificates for the gateway are kept in the vault"]


async def test_forget_leaves_a_tombstone_and_leaves_recall(clients):
    cloud, _, ann = clients
    r = await cloud.remember("The old VPN endpoint is vpn1.internal")
    gone = await cloud.forget(r.id, reason="endpoint decommissioned")
    memory = await ann.get(r.id, after=gone.seq)
    assert memory["forgotten"] is True
    assert memory["forgotten_reason"] == "endpoint decommissioned"
    assert r.id not in [h["id"] for h in await ann.recall("old VPN endpoint", k=10)]
    with pytest.raises(ChangeError):
        await cloud.update(r.id, content="resurrected")


async def test_history_lists_every_version_with_author(clients):
    cloud, laptop, ann = clients
    r = await cloud.remember("Release train leaves on Thursdays")
    u = await laptop.update(r.id, add_tags=["release"])
    f = await ann.reinforce(r.id)
    history = await ann.history(r.id, after=f.seq)
    versions = history["versions"]
    assert [v["seq"] for v in versions] == [r.seq, u.seq, f.seq]
    assert [v["type"] for v in versions] == [
        "memory.remembered",
        "memory.updated",
        "memory.reinforced",
    ]
    assert [(v["agent"], v["instance"]) for v in versions] == [
        ("brad", "cloud"),
        ("brad", "laptop"),
        ("ann", "desk"),
    ]
    assert versions[1]["state"]["tags"] == ["release"]
    assert versions[2]["state"]["recall_count"] == 1


async def test_read_after_waits_for_the_projection(clients):
    cloud, _, ann = clients
    receipts = await asyncio.gather(*(cloud.remember(f"burst note {i}") for i in range(50)))
    last = max(r.seq for r in receipts)
    memory = await ann.get(receipts[-1].id, after=last)
    assert memory["content"].startswith("burst note")
    status = await ann.status()
    assert status["projected_seq"] >= last


async def test_remembering_an_existing_memory_id_again_is_refused(clients):
    cloud, _, ann = clients
    first = await cloud.remember("Idempotent write", memory_id="01IDEMPOTENTWRITE0000000001")
    # The same memory created again is refused as a duplicate memory, and the log is unchanged.
    with pytest.raises(ChangeError):
        await cloud.remember("Idempotent write", memory_id="01IDEMPOTENTWRITE0000000001")
    status = await ann.status()
    assert status["log_seq"] == first.seq


async def test_status_counts_memories_and_lag(clients):
    cloud, _, ann = clients
    r = await cloud.remember("Counting memories")
    await ann.get(r.id, after=r.seq)
    status = await ann.status()
    assert status["log_seq"] == r.seq
    assert status["projected_seq"] == r.seq
    assert status["lag"] == 0
    assert status["memories"] == 1


async def test_tail_lists_events_in_log_order_without_content(clients):
    cloud, _, _ = clients
    a = await cloud.remember("first for tail")
    b = await cloud.update(a.id, add_tags=["t"])
    events = [e async for e in cloud.tail(since=1)]
    assert [e["seq"] for e in events] == [a.seq, b.seq]
    assert [e["type"] for e in events] == ["memory.remembered", "memory.updated"]
    assert all("content" not in e for e in events)


async def test_projection_ahead_of_a_log_that_lost_its_tail_stops_the_service(
    nats_url, swarm_name, tmp_path
):
    from projections.runner import ProjectionAhead  # noqa: PLC0415
    from projections.service import SwarmService  # noqa: PLC0415
    from swarm.jetstream import connect  # noqa: PLC0415
    from swarm.subjects import Subjects  # noqa: PLC0415

    data = tmp_path / "data"
    async with (
        SwarmService(nats_url, swarm=swarm_name, data_dir=data),
        await SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="cloud") as c,
    ):
        receipts = [await c.remember(f"soon lost {i}") for i in range(3)]
        await c.status()
    # Simulate a power cut that took the log's tail: the stream comes back shorter.
    nc = await connect(nats_url)
    await nc.jetstream().delete_stream(Subjects(swarm_name).log_stream)
    await nc.close()
    service = SwarmService(nats_url, swarm=swarm_name, data_dir=data)
    await service.start()
    try:
        with pytest.raises(ProjectionAhead, match="lost acknowledged events"):
            await asyncio.wait_for(service.wait_closed(), 10)
    finally:
        await service.stop()
    assert receipts[-1].seq == 4  # after the default law's enactment at seq 1


async def test_client_side_redaction_writes_what_the_law_would_refuse_without_it(clients):
    cloud, _, ann = clients
    with pytest.raises(LawViolation):
        await cloud.remember("Page ops@example.org if the backup fails")
    receipt = await cloud.remember(
        "Page ops@example.org if the backup fails", tags=["ops"], redact=True
    )
    memory = await ann.get(receipt.id, after=receipt.seq)
    assert memory["content"] == "Page [REDACTED:email] if the backup fails"
    rows = await ann.rejections()
    assert rows and rows[-1]["law"] == rows[-1]["check"] == "no-private-data"
