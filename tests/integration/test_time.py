"""Time on real parts: as-of reads, readable history, replay into a copy, offline reads."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from projections.duckdb_store import DuckStore
from projections.offline import OfflineReader
from projections.replay import MANIFEST, replay
from projections.service import SwarmService, store_paths
from swarm.client import SwarmClient
from swarm.errors import ConfigError, NotFound, StoreError

pytestmark = pytest.mark.integration

QUERIES = ("staging database", "backups nightly", "maintenance window migration", "note")


@dataclass
class Story:
    """Three memories changed over time, and the log sequence after each step."""

    db: str
    backups: str
    private: str
    window: str
    seqs: dict[str, int]


async def tell(brad: SwarmClient, ann: SwarmClient) -> Story:
    seqs: dict[str, int] = {}
    db = await brad.remember(
        "The staging database moves to eu-west-2 on Friday at 18:00 UTC", tags=["db", "ops"]
    )
    seqs["db"] = db.seq
    backups = await brad.remember("Backups run nightly at 02:00 UTC", tags=["ops"])
    seqs["backups"] = backups.seq
    private = await ann.remember("Ann's private note about the database", private=True)
    seqs["private"] = private.seq
    seqs["moved"] = (
        await ann.update(
            db.id,
            content="The staging database moves to eu-west-2 on Saturday at 09:00 UTC",
            add_tags=["migration"],
            remove_tags=["ops"],
        )
    ).seq
    seqs["reinforced"] = (await ann.reinforce(db.id)).seq
    seqs["forgot"] = (await brad.forget(backups.id, reason="moved to the runbook")).seq
    window = await brad.remember("The database migration needs a maintenance window")
    seqs["window"] = window.seq
    await brad.get(window.id, after=window.seq)
    return Story(db.id, backups.id, private.id, window.id, seqs)


@pytest.fixture
async def story(service: SwarmService, nats_url: str, swarm_name: str) -> Any:
    brad = await SwarmClient.connect(nats_url, swarm=swarm_name, agent="brad", instance="cloud")
    ann = await SwarmClient.connect(nats_url, swarm=swarm_name, agent="ann", instance="desk")
    told = await tell(brad, ann)
    yield told, brad, ann
    await brad.close()
    await ann.close()


async def copy_of(service: SwarmService, into: Path, until: int | datetime | None = None) -> Any:
    assert service.log is not None
    assert service.keys is not None
    return await replay(service.log, into, until=until, keys=service.keys.path)


# -- as-of reads through the service --------------------------------------------------------


async def test_get_as_of_a_sequence_answers_as_the_swarm_did_then(story: Any) -> None:
    s, brad, _ = story
    with pytest.raises(NotFound):
        await brad.get(s.db, as_of=s.seqs["db"] - 1)
    first = await brad.get(s.db, as_of=s.seqs["db"])
    assert first["content"].endswith("Friday at 18:00 UTC")
    assert (first["tags"], first["as_of"], first["version"]) == (["db", "ops"], s.seqs["db"], 1)
    moved = await brad.get(s.db, as_of=s.seqs["reinforced"] - 1)
    assert moved["content"].endswith("Saturday at 09:00 UTC")
    assert (moved["tags"], moved["recall_count"], moved["updated_by"]) == (
        ["db", "migration"],
        0,
        "ann@desk",
    )
    assert (await brad.get(s.backups, as_of=s.seqs["forgot"] - 1))["forgotten"] is False
    # As of the log's end, the answer is exactly today's.
    for mid in (s.db, s.backups, s.window):
        now = await brad.get(mid)
        then = await brad.get(mid, as_of=s.seqs["window"])
        assert then.pop("as_of") == s.seqs["window"]
        assert then == now


async def test_get_as_of_a_time_uses_the_last_sequence_accepted_then(story: Any) -> None:
    s, brad, _ = story
    versions = (await brad.history(s.db))["versions"]
    moved_at = datetime.fromisoformat(versions[1]["at"])
    then = await brad.get(s.db, as_of=moved_at)
    assert (then["seq"], then["as_of"]) == (s.seqs["moved"], s.seqs["moved"])
    just_before = await brad.get(s.db, as_of=moved_at - timedelta(microseconds=1))
    assert just_before["seq"] == s.seqs["db"]
    with pytest.raises(NotFound):
        await brad.get(s.db, as_of="2000-01-01")
    assert (await brad.get(s.db, as_of=datetime.now().astimezone()))["as_of"] >= s.seqs["window"]


async def test_as_of_reads_keep_private_memories_private(story: Any) -> None:
    s, brad, ann = story
    assert (await ann.get(s.private, as_of=s.seqs["private"]))["private"] is True
    with pytest.raises(NotFound):
        await brad.get(s.private, as_of=s.seqs["private"])
    hits = await brad.recall("private note", as_of=s.seqs["window"], k=10)
    assert s.private not in [h["id"] for h in hits]
    assert s.private in [h["id"] for h in await ann.recall("private note", as_of=s.seqs["window"])]


async def test_as_of_past_the_log_or_malformed_is_refused(story: Any) -> None:
    s, brad, _ = story
    with pytest.raises(ConfigError, match="beyond the end of the log"):
        await brad.get(s.db, as_of=s.seqs["window"] + 1000)
    with pytest.raises(ConfigError):
        await brad.recall("database", as_of="last tuesday")


async def test_recall_as_of_sees_the_memories_of_then(story: Any) -> None:
    s, brad, _ = story
    before_forget = await brad.recall("backups nightly", as_of=s.seqs["forgot"] - 1)
    assert s.backups in [h["id"] for h in before_forget]
    assert s.backups not in [h["id"] for h in await brad.recall("backups nightly")]
    early = await brad.recall("staging database migration", as_of=s.seqs["db"], k=10)
    assert [h["id"] for h in early] == [s.db]
    assert early[0]["content"].endswith("Friday at 18:00 UTC")


async def test_history_names_the_author_and_what_changed(story: Any) -> None:
    s, brad, _ = story
    versions = (await brad.history(s.db))["versions"]
    assert [v["author"] for v in versions] == ["brad@cloud", "ann@desk", "ann@desk"]
    assert [v["changes"] for v in versions] == [
        {"created": True},
        {
            "content": {
                "style": "word",
                "diff": "The staging database moves to eu-west-2 on [-Friday-]{+Saturday+} at "
                "[-18:00-]{+09:00+} UTC",
            },
            "tags": {"added": ["migration"], "removed": ["ops"]},
        },
        {"recall_count": {"from": 0, "to": 1}},
    ]
    assert {"memory_id", "seq", "event_id", "type", "agent", "instance", "at", "state"} <= set(
        versions[0]
    )
    forgotten = (await brad.history(s.backups))["versions"][-1]
    assert forgotten["changes"] == {"forgotten": {"reason": "moved to the runbook"}}


# -- replay and offline reads ------------------------------------------------------------------


async def test_recall_as_of_equals_recall_on_a_replay_to_that_point(
    story: Any, service: SwarmService, tmp_path: Path
) -> None:
    s, brad, _ = story
    point = s.seqs["forgot"] - 1
    summary = await copy_of(service, tmp_path / "copy", until=point)
    assert (summary.seq, summary.until_seq, summary.resumed_from) == (point, point, 0)
    with OfflineReader(tmp_path / "copy", swarm=service.subjects.swarm, requester="brad") as copy:
        for query in QUERIES:
            live_then = await brad.recall(query, as_of=point, k=10)
            assert live_then == copy.recall(query, k=10), query
            assert copy.recall(query, k=10, as_of=point) == live_then
        for mid in (s.db, s.backups):
            assert copy.get(mid) == {k: v for k, v in (await brad.get(mid, as_of=point)).items()
                                     if k != "as_of"}  # fmt: skip
        with pytest.raises(NotFound):
            copy.get(s.window)  # written after the point


async def test_two_replays_to_the_same_point_are_identical(
    story: Any, service: SwarmService, tmp_path: Path
) -> None:
    s, _, _ = story
    name = service.subjects.swarm
    point = s.seqs["reinforced"]
    await copy_of(service, tmp_path / "a", until=point)
    await copy_of(service, tmp_path / "b", until=s.seqs["db"])
    resumed = await copy_of(service, tmp_path / "b", until=point)  # resumes the earlier copy
    assert (resumed.resumed_from, resumed.seq) == (s.seqs["db"], point)
    digests = []
    for copy in ("a", "b"):
        with DuckStore(store_paths(tmp_path / copy, name)[0], read_only=True) as store:
            digests.append(store.table_digest())
    assert digests[0] == digests[1]
    readers = [OfflineReader(tmp_path / c, swarm=name, requester="brad") for c in ("a", "b")]
    try:
        for query in QUERIES:
            assert readers[0].recall(query, k=10) == readers[1].recall(query, k=10), query
    finally:
        for reader in readers:
            reader.close()


async def test_replay_until_a_time_stops_at_the_last_entry_accepted_then(
    story: Any, service: SwarmService, tmp_path: Path
) -> None:
    s, brad, _ = story
    moved_at = datetime.fromisoformat((await brad.history(s.db))["versions"][1]["at"])
    summary = await copy_of(service, tmp_path / "copy", until=moved_at)
    assert summary.seq == s.seqs["moved"]
    manifest = json.loads((tmp_path / "copy" / MANIFEST).read_text())
    assert (manifest["swarm"], manifest["seq"], manifest["status"]) == (
        service.subjects.swarm,
        s.seqs["moved"],
        "complete",
    )


async def test_replay_refuses_other_data(story: Any, service: SwarmService, tmp_path: Path) -> None:
    s, _, _ = story
    await copy_of(service, tmp_path / "copy", until=s.seqs["moved"])
    with pytest.raises(ConfigError, match="past"):
        await copy_of(service, tmp_path / "copy", until=s.seqs["db"])
    manifest = json.loads((tmp_path / "copy" / MANIFEST).read_text())
    assert manifest["seq"] == s.seqs["moved"]  # the refusal changed nothing
    manifest["swarm"] = "someone-else"
    (tmp_path / "copy" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="someone-else"):
        await copy_of(service, tmp_path / "copy")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        await copy_of(service, tmp_path / "busy")
    with pytest.raises(ConfigError, match="not empty"):
        await copy_of(service, service.data_dir)  # the live data directory
    with pytest.raises(ConfigError, match="beyond the end"):
        await copy_of(service, tmp_path / "new", until=s.seqs["window"] + 1000)


async def test_offline_reads_answer_like_the_service(
    story: Any, service: SwarmService, tmp_path: Path
) -> None:
    s, brad, ann = story
    await copy_of(service, tmp_path / "copy")
    name = service.subjects.swarm
    with OfflineReader(tmp_path / "copy", swarm=name, requester="brad") as copy:
        assert copy.get(s.db) == await brad.get(s.db)
        assert copy.get(s.db, as_of=s.seqs["db"]) == await brad.get(s.db, as_of=s.seqs["db"])
        assert copy.history(s.db) == await brad.history(s.db)
        with pytest.raises(NotFound):
            copy.get(s.private)
        with pytest.raises(ConfigError, match="beyond the end of this copy"):
            copy.get(s.db, as_of=s.seqs["window"] + 1000)
        status, live = copy.status(), await brad.status()
        assert set(live) <= set(status)
        assert (status["projected_seq"], status["memories"], status["forgotten"]) == (
            live["projected_seq"],
            live["memories"],
            live["forgotten"],
        )
        assert status["replay"]["seq"] == live["projected_seq"]
    with OfflineReader(tmp_path / "copy", swarm=name, requester="ann") as copy:
        assert copy.get(s.private) == await ann.get(s.private)
    with pytest.raises(StoreError, match="running service"):
        OfflineReader(service.data_dir, swarm=name)  # DuckDB: one process while it writes
    with pytest.raises(StoreError, match="no projection of swarm"):
        OfflineReader(tmp_path / "copy", swarm="other")


async def test_recall_snapshots_are_cached_and_bounded(story: Any, service: SwarmService) -> None:
    s, brad, _ = story
    projector = service.projector
    assert projector is not None
    projector.snapshots.keep = 2
    for seq in (s.seqs["db"], s.seqs["moved"], s.seqs["forgot"]):
        await brad.recall("database", as_of=seq)
    built = projector.snapshots.builds
    await brad.recall("database", as_of=s.seqs["forgot"])  # cached: no new build
    assert projector.snapshots.builds == built
    assert projector.snapshots.cached() == [s.seqs["moved"], s.seqs["forgot"]]
    await asyncio.gather(*(brad.recall("database", as_of=s.seqs["window"]) for _ in range(3)))
    assert projector.snapshots.builds == built + 1  # concurrent askers share one build
