"""SIGKILL in the middle of a heavy ingest loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import random

import pytest

from swarm.client import SwarmClient
from swarm.jetstream import JetStreamLog, connect
from swarm.subjects import Subjects
from tests.integration.checks import assert_projection_matches_rebuild, logged_event_ids
from tests.integration.stack import UpProcess

pytestmark = pytest.mark.integration


async def ingest(url: str, swarm: str, total: int, accepted: list, started: asyncio.Event) -> None:
    writers = await asyncio.gather(
        *(
            SwarmClient.connect(url, swarm=swarm, agent=agent, instance=inst, timeout=20)
            for agent, inst in (("brad", "cloud"), ("brad", "laptop"), ("ann", "desk"))
        )
    )
    rng = random.Random(7)
    gate = asyncio.Semaphore(48)

    async def one(i: int) -> None:
        async with gate:
            writer = writers[i % len(writers)]
            mine = [r for r in accepted[-50:] if r is not None]
            if mine and i % 5 == 0:
                receipt = await writer.reinforce(rng.choice(mine).id)
            elif mine and i % 7 == 0:
                receipt = await writer.update(rng.choice(mine).id, add_tags=[f"t{i % 4}"])
            else:
                receipt = await writer.remember(
                    f"memory number {i} about topic {i % 13}", tags=["load"]
                )
            accepted.append(receipt)
            if len(accepted) == total // 3:
                started.set()

    try:
        await asyncio.gather(*(one(i) for i in range(total)))
    finally:
        await asyncio.gather(*(w.close() for w in writers))


async def test_sigkill_mid_ingest_loses_and_duplicates_nothing(nats_url, swarm_name, tmp_path):
    data = tmp_path / "data"
    up = UpProcess("--nats", nats_url, "--name", swarm_name, data=data).start()
    accepted: list = []
    third = asyncio.Event()
    total = 1500
    writer = asyncio.create_task(ingest(nats_url, swarm_name, total, accepted, third))
    await asyncio.wait_for(third.wait(), 60)
    up.kill()  # mid-ingest: proposals in flight, a projector batch possibly half done
    killed_at = len(accepted)
    await asyncio.sleep(0.5)
    up = UpProcess("--nats", nats_url, "--name", swarm_name, data=data).start()
    await asyncio.wait_for(writer, 120)
    assert killed_at < total
    assert len(accepted) == total

    nc = await connect(nats_url)
    log = JetStreamLog(nc, Subjects(swarm_name))
    # Every acknowledged event is in the log exactly once.
    seen, system = await logged_event_ids(log)  # system: the law records of a first start
    assert len(seen) == len(set(seen))
    written = {r.event_id for r in accepted if r.event_id}  # no-op edits write no event
    assert written <= set(seen)
    last = await log.last_seq()

    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="ann", instance="audit"
    ) as c:
        status = await c.status()
        await c.get(accepted[-1].id, after=last)
    assert up.terminate() == 0

    # The recovered projection equals a fresh rebuild from the log.
    live = await assert_projection_matches_rebuild(log, data, swarm_name, tmp_path / "fresh")
    assert live.checkpoint == last
    assert live.events == len(seen) + system
    assert live.recall == status["memories"]
    await nc.close()
