"""A local JetStream cluster: it resumes its stores, and with R3 streams, losing a
node mid-ingest (the LOG's leader, by SIGKILL) loses no acknowledged write and doubles
none."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from swarm.client import SwarmClient
from swarm.cluster import NatsCluster
from swarm.errors import ChangeError, ConnectionFailed, ServerError, Timeout
from swarm.events import Receipt, new_id
from swarm.jetstream import JetStreamLog, LogSettings, connect
from swarm.server import free_port
from swarm.subjects import Subjects
from tests.integration.checks import assert_projection_matches_rebuild, logged_event_ids
from tests.integration.stack import UpProcess

pytestmark = pytest.mark.integration

SWARM = "clustered"
TOTAL = 300
ATTEMPTS = 10


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", nodes=3)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
async def log(cluster: NatsCluster) -> AsyncIterator[JetStreamLog]:
    nc = await connect(cluster.url)
    try:
        yield JetStreamLog(nc, Subjects(SWARM))
    finally:
        await nc.close()


async def test_connect_takes_a_comma_separated_list_and_skips_a_server_that_is_down(
    nats_url: str,
) -> None:
    nc = await connect(f"nats://127.0.0.1:{free_port()}, {nats_url}")
    try:
        assert nc.is_connected
        assert nc.connected_url is not None
        assert nats_url.endswith(f":{nc.connected_url.port}")
    finally:
        await nc.close()


async def test_a_cluster_resumes_its_stores_on_the_same_urls(tmp_path: Path) -> None:
    first = NatsCluster(tmp_path / "cluster", nodes=3)
    with first:
        nc = await connect(first.url)
        await JetStreamLog(nc, Subjects("kept"), LogSettings(replicas=3)).ensure_streams()
        await nc.close()
    assert first.running == []

    again = NatsCluster(tmp_path / "cluster")  # size, name and ports from the directory
    assert again.url == first.url
    with again:
        nc = await connect(again.url)
        log = JetStreamLog(nc, Subjects("kept"), LogSettings(replicas=3))
        await log.ensure_streams()  # rides out the streams electing their leaders
        info = await log.js.stream_info(log.subjects.log_stream)
        assert info.config.num_replicas == 3
        await nc.close()


def test_a_second_cluster_on_the_same_directory_is_refused(cluster: NatsCluster) -> None:
    with pytest.raises(ServerError, match="already running"):
        NatsCluster(cluster.data_dir, port=free_port()).start()
    assert sorted(cluster.running) == ["n1", "n2", "n3"]


class Ingest:
    """``TOTAL`` remembers from three writers, 16 at a time; a write that times out
    is sent again with the same memory id until it is applied."""

    def __init__(self) -> None:
        self.applied: dict[str, Receipt | None] = {}  # None: applied by an earlier try
        self.retries: Counter[str] = Counter()  # why a try failed
        self.reached: dict[int, asyncio.Event] = {}

    def at(self, count: int) -> asyncio.Event:
        return self.reached.setdefault(count, asyncio.Event())

    async def run(self, url: str) -> None:
        writers = await asyncio.gather(
            *(
                SwarmClient.connect(url, swarm=SWARM, agent=agent, instance=inst, timeout=5)
                for agent, inst in (("brad", "cloud"), ("brad", "laptop"), ("ann", "desk"))
            )
        )
        gate = asyncio.Semaphore(16)
        try:
            await asyncio.gather(
                *(
                    self._write(writer, i, gate)
                    for i, writer in zip(range(TOTAL), itertools.cycle(writers))
                )
            )
        finally:
            await asyncio.gather(*(w.close() for w in writers))

    async def _write(self, writer: SwarmClient, i: int, gate: asyncio.Semaphore) -> None:
        memory_id = new_id()
        async with gate:
            for _ in range(ATTEMPTS):
                try:
                    receipt: Receipt | None = await writer.remember(
                        f"memory number {i} about topic {i % 13}",
                        tags=["load"],
                        memory_id=memory_id,
                    )
                except (Timeout, ConnectionFailed) as err:
                    self.retries[f"{type(err).__name__}: {err}"[:120]] += 1
                    continue
                except ChangeError as err:
                    if "already exists" not in err.reason:
                        raise
                    receipt = None  # an earlier, unanswered try was applied
                self.applied[memory_id] = receipt
                for count, event in self.reached.items():
                    if len(self.applied) >= count:
                        event.set()
                return
        raise AssertionError(f"write {i} was not applied in {ATTEMPTS} tries: {self.retries}")


async def test_leader_loss_mid_ingest_loses_and_duplicates_nothing(
    cluster: NatsCluster, log: JetStreamLog, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    up = UpProcess("--nats", cluster.url, "--replicas", "3", "--name", SWARM, data=data).start()
    try:
        info = await log.js.stream_info(log.subjects.log_stream)
        assert info.config.num_replicas == 3
        leader = info.cluster.leader
        assert leader in cluster.servers

        ingest = Ingest()
        third, two_thirds = ingest.at(TOTAL // 3), ingest.at(2 * TOTAL // 3)
        writing = asyncio.create_task(ingest.run(cluster.url))
        await asyncio.wait_for(third.wait(), 30)
        await asyncio.to_thread(cluster.kill, leader)  # mid-ingest: appends in flight
        killed_at = len(ingest.applied)
        await asyncio.wait_for(two_thirds.wait(), 60)  # written with one node down
        await asyncio.to_thread(cluster.start_node, leader)
        await asyncio.wait_for(writing, 60)
        assert killed_at < TOTAL
        assert len(ingest.applied) == TOTAL

        # Every acknowledged event is in the log exactly once, and every write once.
        seen, system = await logged_event_ids(log)
        assert len(seen) == len(set(seen)) == TOTAL
        acknowledged = {r.event_id for r in ingest.applied.values() if r is not None}
        assert acknowledged <= set(seen)
        last = await log.last_seq()
        async with await SwarmClient.connect(
            cluster.url, swarm=SWARM, agent="ann", instance="audit"
        ) as reader:
            await reader.get(next(iter(ingest.applied)), after=last)
            status = await reader.status()
            for _ in range(100):  # until what it staged is committed too
                if status["memories"] == TOTAL:
                    break
                await asyncio.sleep(0.1)
                status = await reader.status()
    finally:
        stopped = up.terminate()
    assert stopped == 0

    # The projection that lived through the node loss equals a fresh rebuild.
    live = await assert_projection_matches_rebuild(log, data, SWARM, tmp_path / "fresh")
    assert live.checkpoint == last
    assert live.events == len(seen) + system
    assert live.recall == status["memories"] == TOTAL
