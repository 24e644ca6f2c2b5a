"""Export and import through a client: stable ids, skipped repeats, refusals reported."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from swarm.errors import ChangeError, LawViolation, Rejected
from swarm.events import Receipt
from swarm.transfer import import_bundle, import_plan, imported_id
from tests.unit.test_bundle import ROWS, bundle_of
from tests.unit.test_purity import forbidden_in, loaded_modules


def test_imported_ids_are_stable_valid_and_distinct_per_agent() -> None:
    first = imported_id("brad", "01M7XTRQ3JABS0W5SJ5VASN4DK")
    assert first == imported_id("brad", "01M7XTRQ3JABS0W5SJ5VASN4DK")
    assert re.fullmatch(r"[0-9A-Za-z_-]{8,64}", first)
    assert first != imported_id("ann", "01M7XTRQ3JABS0W5SJ5VASN4DK")
    assert first != imported_id("brad", "01M7XTRQ3JABS0W5SJ5VASN4DL")


def test_the_plan_leaves_forgotten_memories_out_unless_asked() -> None:
    items, left_out = import_plan(bundle_of())
    assert (len(items), left_out) == (3, 1)
    items, left_out = import_plan(bundle_of(), include_forgotten=True)
    assert (len(items), left_out) == (4, 0)
    assert [i.forget for i in items] == [False, False, False, True]
    assert items[0].as_dict()["source_id"] == ROWS[0]["id"]


class FakeSwarm:
    """An in-memory writer with the gate's answers that matter to an import."""

    def __init__(self, refuse: str | None = None, rate_limited: int = 0) -> None:
        self.memories: dict[str, dict[str, Any]] = {}
        self.refuse = refuse
        self.rate_limited = rate_limited
        self.seq = 0

    def _receipt(self, memory_id: str) -> Receipt:
        self.seq += 1
        return Receipt(id=memory_id, seq=self.seq, event_id=f"e{self.seq}")

    async def remember(
        self,
        content: str,
        *,
        kind: str = "fact",
        tags: Sequence[str] = (),
        importance: float = 0.5,
        private: bool = False,
        memory_id: str | None = None,
    ) -> Receipt:
        assert memory_id is not None
        if self.rate_limited:
            self.rate_limited -= 1
            raise Rejected("slow down and retry", check="rate")
        if memory_id in self.memories:
            raise ChangeError(f"memory {memory_id} already exists")
        if self.refuse and self.refuse in content:
            raise LawViolation("the memory contains private data (email)", law="no-private-data")
        self.memories[memory_id] = {
            "content": content,
            "kind": kind,
            "tags": list(tags),
            "importance": importance,
            "private": private,
            "forgotten": False,
        }
        return self._receipt(memory_id)

    async def forget(self, memory_id: str, *, reason: str | None = None) -> Receipt:
        if self.memories[memory_id]["forgotten"]:
            raise ChangeError(f"memory {memory_id} is forgotten and cannot change")
        self.memories[memory_id]["forgotten"] = True
        return self._receipt(memory_id)


async def test_import_restores_each_memory_and_skips_all_on_a_second_run() -> None:
    swarm = FakeSwarm()
    first = await import_bundle(swarm, bundle_of())
    assert first.as_dict() == {
        "imported": 3,
        "skipped": 0,
        "rejected": [],
        "pending": [],
        "left_out": 1,
    }
    restored = swarm.memories[imported_id("brad", ROWS[0]["id"])]
    assert restored == {
        "content": "Nightly backups run at 03:00",
        "kind": "fact",
        "tags": ["db", "ops"],
        "importance": 0.8,
        "private": False,
        "forgotten": False,
    }
    assert swarm.memories[imported_id("brad", ROWS[2]["id"])]["private"] is True
    again = await import_bundle(swarm, bundle_of())
    assert (again.imported, again.skipped, swarm.seq) == (0, 3, 3)


async def test_a_rejected_memory_is_reported_and_the_rest_go_on() -> None:
    swarm = FakeSwarm(refuse="Deploys")
    report = await import_bundle(swarm, bundle_of())
    assert report.imported == 2
    assert report.rejected == [
        {
            "id": ROWS[1]["id"],
            "memory_id": imported_id("brad", ROWS[1]["id"]),
            "check": "no-private-data",
            "reason": "the memory contains private data (email)",
        }
    ]


async def test_forgotten_memories_are_imported_then_forgotten_once() -> None:
    swarm = FakeSwarm()
    report = await import_bundle(swarm, bundle_of(), include_forgotten=True)
    assert (report.imported, report.left_out) == (4, 0)
    assert swarm.memories[imported_id("brad", ROWS[3]["id"])]["forgotten"] is True
    again = await import_bundle(swarm, bundle_of(), include_forgotten=True)
    assert (again.imported, again.skipped, again.rejected) == (0, 4, [])


async def test_a_write_the_rate_limit_refuses_is_tried_again() -> None:
    swarm = FakeSwarm(rate_limited=2)
    report = await import_bundle(swarm, bundle_of(), concurrency=1)
    assert (report.imported, report.rejected) == (3, [])


async def test_progress_is_reported_after_each_memory() -> None:
    seen: list[tuple[int, int]] = []
    await import_bundle(FakeSwarm(), bundle_of(), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_transfer_module_loads_no_io_stack() -> None:
    assert forbidden_in(loaded_modules("swarm.transfer")) == []
