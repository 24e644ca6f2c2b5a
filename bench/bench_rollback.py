"""Rollback: time to roll back one memory and one agent's 10k events, next to the floor.

A rollback reads each affected memory's history from the log and appends one
compensating change per memory. The floor, in the same run, is the raw work it
cannot avoid: a raw ordered read of the log range it examines plus raw pipelined
JetStream publishes of as many entries as it appends.

    python bench/bench_rollback.py [--versions 50] [--memories 2000] [--edits 4] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CAUSES, EVENTS, SYSTEMS, NatsProcess, metric_table, quiet_logs

from projections.service import SwarmService
from swarm.client import SwarmClient
from swarm.jetstream import JetStreamLog, connect
from swarm.subjects import Subjects


def text(i: int) -> str:
    return f"The {SYSTEMS[i % len(SYSTEMS)]} {EVENTS[i % len(EVENTS)]} {CAUSES[i % len(CAUSES)]}"


async def gathered(calls: list[Any], width: int = 200) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(calls), width):
        out.extend(await asyncio.gather(*calls[start : start + width]))
    return out


async def decide(client: SwarmClient, row: dict[str, Any]) -> float:
    """Approve a rollback proposal; seconds until its compensating changes are in the log."""
    started = time.perf_counter()
    decided = await client.approve(row["proposal"])
    assert decided["status"] == "approved", decided
    return time.perf_counter() - started


async def floor(url: str, swarm: str, first: int, last: int, appends: int) -> float:
    """Raw ordered read of the log from ``first`` to ``last`` + raw pipelined publishes."""
    nc = await connect(url)
    log = JetStreamLog(nc, Subjects(swarm))
    try:
        started = time.perf_counter()
        async for _ in log.read(start_seq=first, until_seq=last, batch=2000):
            pass
        js = nc.jetstream()
        await js.add_stream(name="BENCH_FLOOR", subjects=["bench.floor.>"])
        futures = [await js.publish_async(f"bench.floor.{i}", b"x" * 600) for i in range(appends)]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await nc.close()


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    nats = NatsProcess(tmp / "nats", sync_interval="1s").start()
    try:
        swarm = "bench"
        async with SwarmService(nats.url, swarm=swarm, data_dir=tmp / "data"):
            owner = await SwarmClient.connect(nats.url, swarm=swarm, agent="owner", instance="a")
            bulk = await SwarmClient.connect(nats.url, swarm=swarm, agent="bulk", instance="a")
            try:
                # One memory with many versions, rolled back to its first.
                made = await owner.remember(text(0))
                for i in range(1, args.versions):
                    await owner.update(made.id, content=text(i))
                row = await owner.rollback(made.seq, memory_id=made.id, reason="bench")
                one = await decide(owner, row)
                one_floor = await floor(nats.url, swarm, made.seq, row["opened_seq"], 1)

                # One agent's writes after a point: memories it creates, then edits.
                point = (await owner.status())["log_seq"]
                receipts = await gathered([bulk.remember(text(i)) for i in range(args.memories)])
                for round_ in range(args.edits):
                    await gathered(
                        [
                            bulk.update(r.id, content=text(i + round_ + 1))
                            for i, r in enumerate(receipts)
                        ]
                    )
                events = args.memories * (1 + args.edits)
                row = await owner.rollback(point, agent="bulk", reason="bench")
                agent_s = await decide(owner, row)
                agent_floor = await floor(
                    nats.url, swarm, point + 1, row["opened_seq"], args.memories
                )
            finally:
                await asyncio.gather(owner.close(), bulk.close())
    finally:
        nats.stop()
    return {
        "rows": [
            {
                "metric": f"rollback of one memory ({args.versions} versions)",
                "value": one * 1000,
                "unit": "ms",
                "floor": one_floor * 1000,
                "ratio": one_floor / one,
            },
            {
                "metric": f"rollback of one agent's {events:,} events ({args.memories:,} memories)",
                "value": agent_s,
                "unit": "s",
                "floor": agent_floor,
                "ratio": agent_floor / agent_s,
            },
        ],
        "events": events,
        "memories": args.memories,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--versions", type=int, default=50, help="versions of the one memory")
    parser.add_argument("--memories", type=int, default=2000, help="memories the agent writes")
    parser.add_argument("--edits", type=int, default=4, help="edits per memory after creation")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as d:
        report = asyncio.run(run(args, Path(d)))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(metric_table(report["rows"], floor_header="floor (raw read + raw appends)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
