"""Hostile and repeated input through the real gate: clear answers, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from swarm.client import SwarmClient
from swarm.codec import encode
from swarm.crdt import MemoryDoc, author, new_actor
from swarm.events import MemoryRemembered, MemoryUpdated
from swarm.gatekeeper import REPLY_HEADER
from swarm.jetstream import JetStreamLog, connect
from swarm.keystore import Keystore
from swarm.sealing import seal
from swarm.subjects import Subjects

pytestmark = pytest.mark.integration


class RawWriter:
    """Publishes arbitrary bytes to an inbox and waits for the gate's answer."""

    def __init__(self, log: JetStreamLog) -> None:
        self.log = log
        self.inbox = log.nc.new_inbox()
        self.answers: asyncio.Queue[dict] = asyncio.Queue()

    async def start(self) -> RawWriter:
        async def on_answer(msg):
            await self.answers.put(json.loads(msg.data))

        await self.log.nc.subscribe(self.inbox, cb=on_answer)
        return self

    async def send(self, agent: str, instance: str, data: bytes, event_id: str = "raw") -> dict:
        await self.log.propose(
            agent, instance, data, event_id=event_id, headers={REPLY_HEADER: self.inbox}
        )
        return await asyncio.wait_for(self.answers.get(), 10)


@pytest.fixture
async def raw(service, nats_url, swarm_name):
    nc = await connect(nats_url)
    writer = await RawWriter(JetStreamLog(nc, Subjects(swarm_name))).start()
    yield writer
    await nc.close()


def remembered(
    swarm: str,
    agent: str,
    instance: str,
    content: str = "hello",
    actor: bytes | None = None,
    memory_id: str = "01HOSTILE00000000000000001",
    keys: Keystore | None = None,
):
    """A hand-made creation; with ``keys`` its content is sealed as the SDK seals it."""
    actor = actor or new_actor(swarm, agent, instance)
    if keys is not None:
        [entry] = keys.issue([memory_id], agent=agent)
        content = seal(content, key_id=entry.key_id, key=entry.key, memory_id=memory_id)
    with author(MemoryDoc(), actor) as (edit, out):
        edit.create(
            memory_id=memory_id,
            content=content,
            kind="fact",
            tags=[],
            importance=0.5,
            agent=agent,
            instance=instance,
            private=False,
            created_at="2026-01-01T00:00:00+00:00",
        )
    return MemoryRemembered(
        swarm=swarm,
        agent=agent,
        instance=instance,
        actor=actor.hex(),
        memory_id=memory_id,
        change=out[0],
    )


def check(answer: dict) -> str:
    assert answer["ok"] is False, answer
    return answer["error"]["check"]


async def test_malformed_json_is_refused_as_schema(raw):
    assert check(await raw.send("brad", "cloud", b"{not json")) == "schema"


async def test_unknown_schema_version_is_refused_with_its_number(raw, swarm_name):
    data = json.loads(encode(remembered(swarm_name, "brad", "cloud")))
    data["schema_version"] = 7
    answer = await raw.send("brad", "cloud", json.dumps(data).encode())
    assert check(answer) == "schema"
    assert "7" in answer["error"]["reason"]


async def test_oversized_event_is_refused_as_size(raw, swarm_name):
    big = encode(remembered(swarm_name, "brad", "cloud", content="x" * 100_000))
    assert check(await raw.send("brad", "cloud", big)) == "size"


async def test_invalid_automerge_bytes_are_refused_as_change(raw, swarm_name):
    event = remembered(swarm_name, "brad", "cloud").model_copy(update={"change": os.urandom(64)})
    assert check(await raw.send("brad", "cloud", encode(event))) == "change"
    crasher = b"\x85\x6f\x4a\x83" + os.urandom(40)  # valid magic, garbage body
    event = event.model_copy(update={"change": crasher})
    assert check(await raw.send("brad", "cloud", encode(event))) == "change"


async def test_writing_as_another_instance_is_refused_as_identity(raw, swarm_name):
    event = remembered(swarm_name, "ann", "desk")
    answer = await raw.send("brad", "cloud", encode(event))  # brad's inbox, ann's envelope
    assert check(answer) == "identity"
    assert "may only write as itself" in answer["error"]["reason"]


async def test_change_by_another_actor_is_refused_as_identity(raw, swarm_name):
    foreign = new_actor(swarm_name, "ann", "desk")
    event = remembered(swarm_name, "brad", "cloud", actor=foreign)
    event = event.model_copy(update={"actor": new_actor(swarm_name, "brad", "cloud").hex()})
    assert check(await raw.send("brad", "cloud", encode(event))) == "identity"


async def test_plain_text_content_is_refused_as_sealed(raw, swarm_name):
    answer = await raw.send("brad", "cloud", encode(remembered(swarm_name, "brad", "cloud")))
    assert check(answer) == "sealed"
    assert "could never be erased" in answer["error"]["reason"]


async def test_content_sealed_with_a_key_the_service_did_not_issue_is_refused(raw, swarm_name):
    mid = "01HOSTILE00000000000000003"
    forged = seal("hello", key_id="k" * 22, key=os.urandom(32), memory_id=mid)
    event = remembered(swarm_name, "brad", "cloud", content=forged, memory_id=mid)
    answer = await raw.send("brad", "cloud", encode(event))
    assert check(answer) == "sealed"
    assert "did not issue" in answer["error"]["reason"]


async def test_another_memorys_key_and_another_agents_key_are_refused(raw, service, swarm_name):
    [theirs] = service.keys.issue(["01HOSTILE00000000000000004"], agent="brad")
    mid = "01HOSTILE00000000000000005"
    moved = seal("hello", key_id=theirs.key_id, key=theirs.key, memory_id=mid)
    answer = await raw.send(
        "brad", "cloud", encode(remembered(swarm_name, "brad", "cloud", moved, memory_id=mid))
    )
    assert (check(answer), answer["error"]["reason"]) == (
        "sealed",
        f"key {theirs.key_id} was issued for another memory",
    )
    [anns] = service.keys.issue([mid], agent="ann")
    borrowed = seal("hello", key_id=anns.key_id, key=anns.key, memory_id=mid)
    answer = await raw.send(
        "brad", "cloud", encode(remembered(swarm_name, "brad", "cloud", borrowed, memory_id=mid))
    )
    assert "issued to another agent" in answer["error"]["reason"]


async def test_same_event_sent_twice_gets_the_same_receipt(raw, service, swarm_name, nats_url):
    event = remembered(
        swarm_name, "brad", "cloud", memory_id="01HOSTILE00000000000000002", keys=service.keys
    )
    first = await raw.send("brad", "cloud", encode(event), event.id)
    second = await raw.send("brad", "cloud", encode(event), event.id)
    assert first["ok"]
    assert second["ok"]
    assert second["seq"] == first["seq"]
    assert second["duplicate"] is True
    nc = await connect(nats_url)
    assert await JetStreamLog(nc, Subjects(swarm_name)).last_seq() == first["seq"]
    await nc.close()


async def test_flood_of_bad_input_leaves_service_serving(raw, swarm_name, nats_url):
    junk = [b"", b"[]", b"null", b'{"type": "memory.remembered"}', os.urandom(200), b"\xff\xfe"]
    answers = [await raw.send("brad", "cloud", data) for data in junk * 5]
    assert all(a["ok"] is False for a in answers)
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="ann", instance="desk"
    ) as ann:
        r = await ann.remember("still serving after the flood")
        assert (await ann.get(r.id, after=r.seq))["content"] == "still serving after the flood"
        status = await ann.status()
        assert status["rejected"] == len(junk) * 5
        assert status["log_seq"] == r.seq


async def test_update_built_on_unknown_history_is_refused(raw, swarm_name, nats_url):
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as c:
        r = await c.remember("base memory")
    # An edit built on a document the log never saw (its own private root).
    actor = new_actor(swarm_name, "brad", "laptop")
    other = remembered(swarm_name, "brad", "laptop", actor=actor, memory_id=r.id)
    with author(MemoryDoc.load(other.change), actor) as (edit, out):
        edit.set_content("edited elsewhere")
    event = MemoryUpdated(
        swarm=swarm_name,
        agent="brad",
        instance="laptop",
        actor=actor.hex(),
        memory_id=r.id,
        change=out[0],
    )
    assert check(await raw.send("brad", "laptop", encode(event))) == "change"


async def test_flood_from_one_instance_is_rate_limited_and_others_still_write(
    nats_url, swarm_name, tmp_path
):
    from projections.service import SwarmService  # noqa: PLC0415
    from swarm.errors import Rejected  # noqa: PLC0415
    from swarm.gate import Limits  # noqa: PLC0415

    limits = Limits(rate_per_instance=5.0, rate_burst=10.0)
    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path, limits=limits):
        flooder = await SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="x")
        other = await SwarmClient.connect(nats_url, swarm=swarm_name, agent="ann", instance="y")
        results = await asyncio.gather(
            *(flooder.remember(f"flood {i}") for i in range(40)), return_exceptions=True
        )
        limited = [r for r in results if isinstance(r, Rejected) and r.check == "rate"]
        accepted = [r for r in results if not isinstance(r, BaseException)]
        assert len(limited) >= 25
        assert 1 <= len(accepted) <= 15
        assert "slow down" in limited[0].reason
        receipt = await other.remember("ann is not slowed by brad's flood")
        assert (await other.get(receipt.id, after=receipt.seq))["agent"] == "ann"
        # The log: the default law's enactment, brad's accepted writes and ann's.
        assert (await other.status())["log_seq"] == 1 + len(accepted) + 1
        await flooder.close()
        await other.close()
