"""Replay and as-of recall benchmark: `swarm replay` next to a raw read of the same log.

Usage::

    python bench/bench_replay.py [--events 100000] [--recall-memories 10000]
                                 [--queries 100] [--workers N] [--no-one-process] [--json]

On a fresh nats-server (``sync_interval: 1s``) with the service as users run it
(``swarm up --nats …``), in one run:

1. fill        real proposals (``bench_gate.build_items``: 70% new memories, 20%
               updates, 10% reinforcements; no private data; content sealed with
               keys issued by the service's keystore, as the SDK does) are
               published to the INBOX and go through the gate, until the log
               holds ``--events``.
2. recall      after the first ``--recall-memories`` memories (the service caught
               up): ``recall(q)`` (live) and ``recall(q, as_of=S)`` at the log's end
               then, the same rows both ways; p50/p99 over ``--queries`` queries
               through the read API, and the first as-of query (which builds the
               snapshot) on its own.
3. replay      the service stopped: a raw ordered consumer read of the whole LOG
               (the floor), ``projections.replay.replay`` of the whole log into a
               fresh directory (with the service's keystore, so recall holds the
               opened text; fold workers as replay chooses, or ``--workers``),
               the same folded in one process (``workers=0``) unless
               ``--no-one-process`` (the two copies must hold identical tables),
               then the raw read again; the ratio is against the mean of the two
               raw reads. 1M events are extrapolated linearly. CPU is that of the
               bench process and its fold workers; the load average is printed.

Reported next to the targets: replay >= 30% of the raw read, 1M events in < 3 min.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_gate import SWARM, build_items
from bench.bench_recall import make_queries
from bench.common import (
    NatsProcess,
    ServiceProcess,
    machine_info,
    metric_table,
    quiet_logs,
    read_log,
    summary,
)

MILLION = 1_000_000


async def fill(url: str, items: list[Any], *, until_memories: int | None = None) -> dict[str, Any]:
    """Publish proposals to the INBOX (pipelined) and wait until the gate has judged them."""
    from swarm.jetstream import JetStreamLog, connect  # noqa: PLC0415
    from swarm.subjects import Subjects  # noqa: PLC0415

    nc = await connect(url, name="bench-replay-fill")
    subjects = Subjects(SWARM)
    log = JetStreamLog(nc, subjects)
    js = nc.jetstream(timeout=30, publish_async_max_pending=2000)
    started = time.perf_counter()
    try:
        pending = []
        for item in items:
            headers = {"Swarm-Event-Id": json.loads(item.raw)["id"]}
            pending.append(
                await js.publish_async(
                    subjects.inbox(item.agent, item.instance), item.raw, headers=headers
                )
            )
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 900
        while await log.message_count(subjects.inbox_stream):  # the gate drains it
            if time.monotonic() > deadline:
                raise TimeoutError("the gate did not drain the inbox")
            await asyncio.sleep(0.2)
        last = await log.last_seq()
    finally:
        await nc.close()
    return {"proposals": len(items), "log_seq": last, "seconds": time.perf_counter() - started}


async def wait_projected(client: Any, seq: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (await client.status())["projected_seq"] < seq:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the projection did not reach seq {seq}")
        await asyncio.sleep(0.2)


async def recall_latency(url: str, seq: int, queries: int) -> dict[str, Any]:
    """Live recall and as-of recall at ``seq`` (the log's end: the same rows)."""
    from swarm.client import SwarmClient  # noqa: PLC0415

    qs = make_queries(queries, 7)
    async with await SwarmClient.connect(
        url, swarm=SWARM, agent="reader", instance="bench", timeout=120
    ) as client:
        await wait_projected(client, seq)
        status = await client.status()
        t0 = time.perf_counter()
        await client.recall(qs[0][0], as_of=seq)
        cold = (time.perf_counter() - t0) * 1e3
        out: dict[str, Any] = {"as_of_seq": seq, "memories": status["memories"], "cold_ms": cold}
        for name, as_of in (("live", None), ("as_of", seq)):
            for q, _ in qs[:5]:  # warm-up
                await client.recall(q, as_of=as_of)
            times = []
            for q, requester in qs:
                t0 = time.perf_counter()
                await client.recall(q, as_of=as_of, agent=requester)
                times.append((time.perf_counter() - t0) * 1e3)
            out[name] = summary(times)
        # The same answers both ways (the rows are the same at the log's end).
        same = 0
        for q, _ in qs[:20]:
            live = [h["id"] for h in await client.recall(q)]
            then = [h["id"] for h in await client.recall(q, as_of=seq)]
            same += live == then
        out["same_ids_of_20"] = same
    return out


def _cpu_seconds() -> float:
    """CPU of this process and its reaped children (the fold workers), in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


async def timed_replay(log: Any, into: Path, keys: Path, workers: int | None) -> dict[str, Any]:
    from projections.duckdb_store import DuckStore  # noqa: PLC0415
    from projections.replay import replay  # noqa: PLC0415

    load = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    result = await replay(log, into, keys=keys, workers=workers)
    cpu = _cpu_seconds() - cpu0
    with DuckStore(result.duckdb, read_only=True) as store:
        digest = store.table_digest()
    return {
        "seq": result.seq,
        "seconds": result.seconds,
        "events_per_s": result.rate,
        "memories": result.memories,
        "cpu_cores": round(cpu / result.seconds, 2),
        "load": [load, os.getloadavg()[0]],
        "digest": digest,
    }


async def replay_vs_raw(
    url: str, work: Path, keys: Path, workers: int | None, one_process: bool
) -> dict[str, Any]:
    from projections.parallel import plan_workers  # noqa: PLC0415
    from swarm.jetstream import JetStreamLog, connect  # noqa: PLC0415
    from swarm.subjects import Subjects  # noqa: PLC0415

    nc = await connect(url, name="bench-replay")
    try:
        log = JetStreamLog(nc, Subjects(SWARM))
        last = await log.last_seq()
        raw = []
        t0 = time.perf_counter()
        if await read_log(log) != last:
            raise RuntimeError("the raw read missed messages")
        raw.append(time.perf_counter() - t0)
        replays = {"default": await timed_replay(log, work / "copy", keys, workers)}
        if one_process:  # the same log folded in one process (workers=0), for comparison
            replays["one_process"] = await timed_replay(log, work / "copy-1", keys, 0)
        t0 = time.perf_counter()
        await read_log(log)
        raw.append(time.perf_counter() - t0)
    finally:
        await nc.close()
    for name, rep in replays.items():
        if rep["seq"] != last:
            raise RuntimeError(f"replay ({name}) reached {rep['seq']}, the log ends at {last}")
    digests = [rep.pop("digest") for rep in replays.values()]
    if any(d != digests[0] for d in digests):
        raise RuntimeError("the replays hold different tables")
    raw_rate = last / statistics.mean(raw)
    main = replays["default"]
    return {
        "log_messages": last,
        "raw_read_seconds": raw,
        "raw_read_msgs_per_s": raw_rate,
        "workers": plan_workers(workers, last),
        "replay_seconds": main["seconds"],
        "replay_events_per_s": main["events_per_s"],
        "ratio": main["events_per_s"] / raw_rate,
        "memories": main["memories"],
        "cpu_cores": main["cpu_cores"],
        "load": main["load"],
        "million_events_minutes": MILLION / main["events_per_s"] / 60,
        "replays": replays,
        "same_tables": True,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from projections.layout import keystore_path  # noqa: PLC0415
    from swarm.keystore import Keystore  # noqa: PLC0415

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        keys = keystore_path(work / "service", SWARM)
        # The service refuses plain text: content is sealed with keys its keystore
        # issued (opened here as the SDK's key requests would reach it).
        with Keystore(keys) as keystore:
            items = build_items(args.events, args.seed, 0.0, keystore)
        # The first --recall-memories new memories, and the proposals up to them.
        news = [i for i, item in enumerate(items) if item.type == "memory.remembered"]
        cut = news[min(args.recall_memories, len(news)) - 1] + 1
        nats_proc = NatsProcess(work / "nats", sync_interval="1s").start()
        try:
            with ServiceProcess(nats_proc.url, swarm=SWARM, data_dir=work / "service"):
                out["fill_recall"] = await fill(nats_proc.url, items[:cut])
                out["recall"] = await recall_latency(
                    nats_proc.url, out["fill_recall"]["log_seq"], args.queries
                )
                out["fill_rest"] = await fill(nats_proc.url, items[cut:])
                if out["fill_rest"]["log_seq"] < len(items):  # + the laws' record
                    raise RuntimeError(
                        f"the gate accepted only {out['fill_rest']['log_seq']} of "
                        f"{len(items)} proposals (see {work / 'service' / 'service.log'})"
                    )
            out["replay"] = await replay_vs_raw(
                nats_proc.url, work, keys, args.workers, not args.no_one_process
            )
        finally:
            nats_proc.stop()
    return out


def rows_for(out: dict[str, Any]) -> list[dict[str, Any]]:
    rep, rec = out["replay"], out["recall"]
    n = rep["log_messages"]
    live, then = rec["live"], rec["as_of"]
    return [
        {"metric": f"raw ordered read of the log ({n:,} messages)",
         "value": rep["raw_read_msgs_per_s"], "unit": "msg/s", "floor": None, "ratio": None,
         "target": None},
        {"metric": f"replay {n:,} events (DuckDB + LanceDB, into a fresh directory), "
                   f"{rep['workers']} fold workers",
         "value": rep["replay_events_per_s"], "unit": "ev/s", "floor": rep["raw_read_msgs_per_s"],
         "ratio": rep["ratio"], "target": ">= 30% of raw", "pass": rep["ratio"] >= 0.30},
        *([{"metric": "the same, folded in one process (workers=0)",
            "value": rep["replays"]["one_process"]["events_per_s"], "unit": "ev/s",
            "floor": rep["raw_read_msgs_per_s"],
            "ratio": rep["replays"]["one_process"]["events_per_s"] / rep["raw_read_msgs_per_s"],
            "target": None}] if "one_process" in rep["replays"] else []),
        {"metric": "replay 1M events, extrapolated", "value": rep["million_events_minutes"],
         "unit": "min", "floor": None, "ratio": None, "target": "< 3 min",
         "pass": rep["million_events_minutes"] < 3},
        {"metric": f"recall p50 / p99, live ({rec['memories']:,} memories)",
         "value": live["p50"], "value2": live["p99"], "unit": "ms", "floor": None,
         "ratio": None, "target": None},
        {"metric": f"recall p50 / p99, as of seq {rec['as_of_seq']:,} (cached snapshot)",
         "value": then["p50"], "value2": then["p99"], "unit": "ms", "floor": None,
         "ratio": None, "target": None},
        {"metric": "recall as of a new seq: first query (builds the snapshot)",
         "value": rec["cold_ms"], "unit": "ms", "floor": None, "ratio": None, "target": None},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000, help="proposals in the log")
    parser.add_argument("--recall-memories", type=int, default=10_000, help="memories for recall")
    parser.add_argument("--queries", type=int, default=100, help="recall queries per mode")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--workers", type=int, default=None, help="fold processes (default: as replay chooses)"
    )
    parser.add_argument(
        "--no-one-process", action="store_true", help="skip the one-process replay (workers=0)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--timeout", type=float, default=1500.0, help="give up after (s)")
    args = parser.parse_args(argv)
    quiet_logs()
    started = time.perf_counter()
    out = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    rows = rows_for(out)
    doc = {
        "bench": "replay",
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "seconds": time.perf_counter() - started,
        "runs": out,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(metric_table(rows))
        rep = out["replay"]
        cores = "; ".join(
            f"{name} {r['cpu_cores']} cores (load {r['load'][0]:.2f}-{r['load'][1]:.2f})"
            for name, r in rep["replays"].items()
        )
        print(f"\nreplay CPU (bench process and its fold workers): {cores}; the replays hold "
              f"identical tables; {out['recall']['same_ids_of_20']}/20 queries returned the "
              f"same ids live and as of the log's end; {doc['seconds']:.0f} s total")  # fmt: skip
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
