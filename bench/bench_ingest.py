"""Ingest benchmark: the write path end to end, each number next to its floor.

Usage::

    python bench/bench_ingest.py [--events 20000] [--sync always|1s|both] [--json]
                                 [--writers 4] [--concurrency 64] [--samples 200]
                                 [--bg-rate 200] [--probes 4] [--latency-seconds 45]
                                 [--profile DIR]

Per durability setting (``sync_interval`` of nats-server; ``both`` = always, then
1s), on a fresh temp dir and a fresh nats-server, with the service (gate +
projector + read API) in its own process and the load generated here:

1. raw floor    nats-py JetStream ``publish_async`` of same-size messages (the
                size of a typical encoded proposal) to a plain file stream,
                ``--window`` in flight, every ack checked.
2. ingest       ``--events`` ``remember`` calls from ``--writers`` SwarmClients
                (2 agents), ``--concurrency`` in flight per client; timed from
                the first propose until the projection has applied the highest
                receipt seq and ``recall(token, after=max_seq)`` finds it. The
                gate-only rate (until the last receipt) is reported too.
3. visible      with a background writer at ``--bg-rate`` events/s, an agent
                writes a memory with a unique token and another agent's
                ``recall(token, after=receipt.seq)`` returns it: write-start ->
                visible and receipt -> visible, p50/p99. ``--probes`` such
                author/reader pairs sample concurrently (each one sequentially),
                ``--samples`` in all, for at most ``--latency-seconds``.
4. rebuild      the service stopped, a fresh Projector folds the whole log
                (DuckDB + LanceDB) next to a raw ordered read of the same log.

``--profile DIR`` samples the service process with py-spy (all threads) during
the ingest and latency phases (nothing if py-spy is not installed) and prints
the hottest functions to stderr. CPU use of each process (bench, service,
nats-server) per phase and the load average are in the JSON: other work on the
box skews every number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CAUSES,
    EVENTS,
    OUTCOMES,
    SYSTEMS,
    CpuMeter,
    NatsProcess,
    ServiceProcess,
    kill_group,
    machine_info,
    metric_table,
    quiet_logs,
    read_log,
    summary,
    which,
)

SWARM = "bench"
AGENTS = ("writer-a", "writer-b")

TAGS = ("incident", "infra", "db", "frontend", "oncall", "perf")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def token(prefix: str, i: int) -> str:
    """A unique letters-only word (no digits: nothing for the private-data laws to flag)."""
    out = []
    for _ in range(5):
        i, r = divmod(i, 26)
        out.append(LETTERS[r])
    return f"zq{prefix}{''.join(reversed(out))}"


def make_text(rng: random.Random, tok: str) -> str:
    return (
        f"The {rng.choice(SYSTEMS)} {rng.choice(EVENTS)} {rng.choice(CAUSES)}; "
        f"{rng.choice(OUTCOMES)}. Ticket {tok}."
    )


def make_tags(rng: random.Random) -> list[str]:
    return rng.sample(TAGS, rng.randint(1, 2))


def typical_proposal_bytes(samples: int = 50) -> int:
    """Mean encoded size of a ``memory.remembered`` proposal as SwarmClient builds it
    (content sealed, see swarm.sealing)."""
    from swarm.codec import encode  # noqa: PLC0415
    from swarm.crdt import MemoryDoc, author, new_actor  # noqa: PLC0415
    from swarm.events import MemoryRemembered, new_id, utcnow  # noqa: PLC0415
    from swarm.sealing import new_key, new_key_id, seal  # noqa: PLC0415

    rng = random.Random(1)
    actor = new_actor(SWARM, AGENTS[0], "i0")
    sizes = []
    for i in range(samples):
        mid = new_id()
        with author(MemoryDoc(), actor) as (edit, out):
            edit.create(
                memory_id=mid, kind="fact",
                content=seal(make_text(rng, token("s", i)), key_id=new_key_id(), key=new_key(),
                             memory_id=mid),
                tags=make_tags(rng), importance=0.5, agent=AGENTS[0], instance="i0",
                private=False, created_at=utcnow().isoformat(),
            )  # fmt: skip
        event = MemoryRemembered(
            swarm=SWARM, agent=AGENTS[0], instance="i0", actor=actor.hex(), memory_id=mid,
            change=out[0],
        )  # fmt: skip
        sizes.append(len(encode(event)))
    return round(sum(sizes) / len(sizes))


async def with_deadline(aw: Any, seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(aw, seconds)
    except TimeoutError:
        raise TimeoutError(f"{what}: no result in {seconds:.0f}s") from None


# -- 1. raw publish floor -------------------------------------------------------------------


async def raw_publish(url: str, *, count: int, size: int, window: int) -> dict[str, Any]:
    import nats  # noqa: PLC0415
    from nats.js.api import StorageType, StreamConfig  # noqa: PLC0415

    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=10, publish_async_max_pending=window)
        await js.add_stream(
            StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"], storage=StorageType.FILE)
        )
        payload = os.urandom(size // 2).hex().encode()[:size].ljust(size, b"x")
        # warm-up, then the timed run
        warm = [
            await js.publish_async("bench.raw.warm", payload, wait_stall=10) for _ in range(200)
        ]
        await with_deadline(asyncio.gather(*warm), 30, "raw warm-up acks")
        start = time.perf_counter()
        futures = []
        for _ in range(count):
            futures.append(await js.publish_async("bench.raw.x", payload, wait_stall=30))
        acks = await with_deadline(
            asyncio.gather(*futures, return_exceptions=True), 60, "raw publish acks"
        )
        elapsed = time.perf_counter() - start
        failed = [a for a in acks if isinstance(a, BaseException)]
        seqs = [a.seq for a in acks if not isinstance(a, BaseException)]
        if failed:
            raise RuntimeError(f"raw publish: {len(failed)} acks failed, first: {failed[0]!r}")
        if len(set(seqs)) != count:
            raise RuntimeError("raw publish: duplicate or missing sequence numbers in acks")
        await js.delete_stream("BENCH_RAW")
        return {
            "messages": count,
            "bytes": size,
            "window": window,
            "seconds": elapsed,
            "msgs_per_s": count / elapsed,
            "mb_per_s": count * size / elapsed / 1e6,
        }
    finally:
        await nc.close()


# -- 2. end-to-end ingest -------------------------------------------------------------------


@dataclass
class Written:
    seq: int
    memory_id: str
    tok: str


@dataclass
class Ingest:
    written: list[Written] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_receipt: float = 0.0


async def connect_clients(url: str, writers: int, timeout: float = 30.0) -> list[Any]:
    from swarm.client import SwarmClient  # noqa: PLC0415

    clients = []
    for n in range(writers):
        agent = AGENTS[n % len(AGENTS)]
        clients.append(
            await SwarmClient.connect(
                url, swarm=SWARM, agent=agent, instance=f"i{n // len(AGENTS)}", timeout=timeout
            )
        )
    return clients


async def write_burst(
    clients: list[Any], *, count: int, concurrency: int, prefix: str, seed: int
) -> Ingest:
    """``count`` remembers spread over ``clients``, ``concurrency`` in flight per client."""
    result = Ingest()
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        tok = token(prefix, i)
        texts.append((tok, make_text(rng, tok), make_tags(rng)))
    next_index = iter(range(count))

    async def worker(client: Any) -> None:
        for i in next_index:
            tok, text, tags = texts[i]
            try:
                receipt = await client.remember(text, tags=tags)
            except Exception as err:
                result.errors[type(err).__name__] += 1
                continue
            result.written.append(Written(receipt.seq, receipt.id, tok))
            result.last_receipt = time.perf_counter()

    # one shared iterator: every worker of every client draws the next event
    await asyncio.gather(*(worker(c) for c in clients for _ in range(concurrency)))
    return result


async def wait_visible(reader: Any, last: Written, *, deadline: float) -> int:
    """Until ``recall(last.tok, after=last.seq)`` returns the memory; returns attempts."""
    from swarm.errors import Timeout  # noqa: PLC0415

    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"seq {last.seq} not visible to recall before the deadline")
        try:
            hits = await with_deadline(
                reader.recall(last.tok, k=5, after=last.seq), remaining + 5, "recall"
            )
        except Timeout:
            continue  # the projection is still behind: the service waits up to 30 s per call
        if any(h.get("id") == last.memory_id for h in hits):
            return attempts
        await asyncio.sleep(0.01)


async def ingest(
    url: str, *, count: int, writers: int, concurrency: int, warmup: int, reader: Any
) -> dict[str, Any]:
    clients = await connect_clients(url, writers)
    try:
        if warmup:
            warm = await with_deadline(
                write_burst(clients, count=warmup, concurrency=8, prefix="w", seed=2),
                120,
                "warm-up writes",
            )
            if warm.errors:
                raise RuntimeError(f"warm-up write errors: {dict(warm.errors)}")
            last = max(warm.written, key=lambda w: w.seq)
            await wait_visible(reader, last, deadline=time.monotonic() + 60)

        start = time.perf_counter()
        burst = await with_deadline(
            write_burst(clients, count=count, concurrency=concurrency, prefix="e", seed=3),
            240, "ingest writes",
        )  # fmt: skip
        gate_done = burst.last_receipt
        status_at_gate = await with_deadline(reader.status(), 30, "status")
        if not burst.written:
            raise RuntimeError(f"no event accepted: {dict(burst.errors)}")
        last = max(burst.written, key=lambda w: w.seq)
        attempts = await wait_visible(reader, last, deadline=time.monotonic() + 180)
        visible = time.perf_counter()
        status = await with_deadline(reader.status(), 30, "status")
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
    accepted = len(burst.written)
    return {
        "events": count,
        "accepted": accepted,
        "errors": dict(burst.errors),
        "writers": writers,
        "concurrency_per_writer": concurrency,
        "max_seq": last.seq,
        "gate_seconds": gate_done - start,
        "gate_events_per_s": accepted / (gate_done - start),
        "e2e_seconds": visible - start,
        "e2e_events_per_s": accepted / (visible - start),
        "projection_lag_at_last_receipt": status_at_gate["log_seq"]
        - status_at_gate["projected_seq"],
        "visible_attempts": attempts,
        "status": status,
    }


# -- 3. write-to-visible latency --------------------------------------------------------------


async def latency(
    url: str, *, samples: int, bg_rate: float, probes: int, max_seconds: float
) -> dict[str, Any]:
    """``probes`` independent author/reader pairs take ``samples`` in total, each pair
    sequentially (write, then recall from the other agent), over a background load."""
    from swarm.client import SwarmClient  # noqa: PLC0415

    async def client(agent: str, n: int) -> Any:
        return await SwarmClient.connect(
            url, swarm=SWARM, agent=agent, instance=f"i{n}", timeout=30
        )

    pairs = [(await client("author", n), await client("reader", n)) for n in range(probes)]
    bg = await client("background", 0)
    stop = asyncio.Event()
    bg_stats: Counter[str] = Counter()
    bg_tasks: set[asyncio.Task[Any]] = set()
    rng = random.Random(4)

    async def one_bg(i: int) -> None:
        try:
            await bg.remember(make_text(rng, token("b", i)), tags=make_tags(rng))
            bg_stats["ok"] += 1
        except Exception as err:
            bg_stats[type(err).__name__] += 1

    async def background() -> None:
        interval = 1.0 / bg_rate
        t_next = time.perf_counter()
        i = 0
        while not stop.is_set():
            if len(bg_tasks) < 256:  # never an unbounded backlog
                task = asyncio.create_task(one_bg(i))
                bg_tasks.add(task)
                task.add_done_callback(bg_tasks.discard)
            else:
                bg_stats["skipped"] += 1
            i += 1
            t_next += interval
            await asyncio.sleep(max(0.0, t_next - time.perf_counter()))

    write_to_visible: list[float] = []
    receipt_to_visible: list[float] = []
    write_to_receipt: list[float] = []
    misses = 0
    numbers = iter(range(samples))
    give_up = 0.0

    async def probe(author_c: Any, reader_c: Any) -> None:
        nonlocal misses
        prng = random.Random(id(author_c))
        for i in numbers:
            if time.monotonic() > give_up:
                return
            tok = token("l", i)
            text = make_text(prng, tok)
            t0 = time.perf_counter()
            receipt = await with_deadline(author_c.remember(text, tags=["oncall"]), 60, "remember")
            t1 = time.perf_counter()
            hits = await with_deadline(reader_c.recall(tok, k=5, after=receipt.seq), 60, "recall")
            t2 = time.perf_counter()
            if not any(h.get("id") == receipt.id for h in hits):
                misses += 1
                continue
            write_to_receipt.append((t1 - t0) * 1e3)
            write_to_visible.append((t2 - t0) * 1e3)
            receipt_to_visible.append((t2 - t1) * 1e3)
            await asyncio.sleep(prng.uniform(0.0, 0.01))  # do not lock step with batches

    bg_task = asyncio.create_task(background())
    try:
        await asyncio.sleep(1.0)  # let the background load settle
        bg_started = time.perf_counter()
        bg_ok_before = bg_stats["ok"]
        give_up = time.monotonic() + max_seconds
        await asyncio.gather(*(probe(a, r) for a, r in pairs))
        bg_elapsed = time.perf_counter() - bg_started
        bg_achieved = (bg_stats["ok"] - bg_ok_before) / bg_elapsed
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bg_task, 5)
        if bg_tasks:
            await asyncio.wait(list(bg_tasks), timeout=30)
        for c in (bg, *(c for pair in pairs for c in pair)):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
    return {
        "samples": len(write_to_visible),
        "samples_wanted": samples,
        "probes": probes,
        "seconds": bg_elapsed,
        "misses": misses,
        "bg_target_per_s": bg_rate,
        "bg_achieved_per_s": bg_achieved,
        "bg_outcomes": dict(bg_stats),
        "write_to_receipt_ms": summary(write_to_receipt),
        "write_to_visible_ms": summary(write_to_visible),
        "receipt_to_visible_ms": summary(receipt_to_visible),
    }


# -- 4. rebuild --------------------------------------------------------------------------------


async def rebuild(url: str, work: Path) -> dict[str, Any]:
    from projections.duckdb_store import DuckStore  # noqa: PLC0415
    from projections.lance import LanceRecall  # noqa: PLC0415
    from projections.runner import Projector  # noqa: PLC0415
    from swarm.embed import HashingEmbedder  # noqa: PLC0415
    from swarm.jetstream import JetStreamLog, connect  # noqa: PLC0415
    from swarm.subjects import Subjects  # noqa: PLC0415

    nc = await connect(url, name="bench-rebuild")
    try:
        log = JetStreamLog(nc, Subjects(SWARM))
        last = await log.last_seq()
        start = time.perf_counter()
        read = await with_deadline(read_log(log), 120, "raw log read")
        read_s = time.perf_counter() - start
        if read != last:
            raise RuntimeError(f"raw read got {read} messages, the log holds {last}")

        store = DuckStore(work / "rebuild" / "state.duckdb")
        recall = LanceRecall(work / "rebuild" / "recall", HashingEmbedder())
        try:
            projector = Projector(log, store, recall)
            start = time.perf_counter()
            seq = await with_deadline(projector.rebuild(), 240, "rebuild")
            rebuild_s = time.perf_counter() - start
            counts = store.counts()
        finally:
            recall.close()
            store.close()
        if seq != last:
            raise RuntimeError(f"rebuild reached seq {seq}, the log ends at {last}")
    finally:
        await nc.close()
    return {
        "log_messages": last,
        "read_seconds": read_s,
        "read_msgs_per_s": read / read_s,
        "rebuild_seconds": rebuild_s,
        "rebuild_events_per_s": last / rebuild_s,
        "ratio": (last / rebuild_s) / (read / read_s),
        "counts": counts,
    }


# -- profiling -------------------------------------------------------------------------------


class Profiler:
    """py-spy on the service process for one phase (all threads, low overhead)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        exe = which("py-spy")
        if exe is None:
            return self
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", "100", "--format", "raw",
             "--threads", "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait(5)


def summarize_pyspy(path: Path, top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            count = int(n)
            frames = stack.split(";")
            total += count
            if frames and frames[0].startswith("thread"):
                threads[frames[0]] += count
                frames = frames[1:]
            if not frames:
                continue
            self_c[frames[-1]] += count
            for f in set(frames):
                incl[f] += count

    def pct(c: int) -> float:
        return round(100.0 * c / total, 1) if total else 0.0

    return {
        "samples": total,
        "threads": {k: pct(v) for k, v in threads.most_common(10)},
        "self_pct": [(f, pct(c)) for f, c in self_c.most_common(top)],
        "inclusive_pct": [(f, pct(c)) for f, c in incl.most_common(top * 2)],
    }


# -- one durability setting ---------------------------------------------------------------------


async def run_setting(sync: str, args: argparse.Namespace, size: int) -> dict[str, Any]:
    from swarm.client import SwarmClient  # noqa: PLC0415

    out: dict[str, Any] = {"sync_interval": sync, "loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{sync}-") as tmp:
        work = Path(tmp)
        nats_proc = NatsProcess(work / "nats", sync_interval=sync).start()
        service: ServiceProcess | None = None
        try:
            out["raw_publish"] = await with_deadline(
                raw_publish(nats_proc.url, count=args.events, size=size, window=args.window),
                120, "raw publish",
            )  # fmt: skip
            service = ServiceProcess(nats_proc.url, swarm=SWARM, data_dir=work / "service")
            service.start(timeout=90)
            reader = await SwarmClient.connect(
                nats_proc.url, swarm=SWARM, agent="reader", instance="i0", timeout=30
            )
            try:
                profile_ctx: Any = contextlib.nullcontext()
                prof_path = None
                if args.profile and service.pid is not None:
                    prof_path = Path(args.profile) / f"service-ingest-{sync}.txt"
                    prof_path.parent.mkdir(parents=True, exist_ok=True)
                    profile_ctx = Profiler(service.pid, prof_path)
                pids = {"bench": None, "service": service.pid, "nats-server": nats_proc.pid}
                if service.gate_pid is not None:  # `swarm up` runs the gate in a child
                    pids["gate"] = service.gate_pid
                with profile_ctx, CpuMeter(pids) as cpu:
                    out["ingest"] = await ingest(
                        nats_proc.url, count=args.events, writers=args.writers,
                        concurrency=args.concurrency, warmup=args.warmup, reader=reader,
                    )  # fmt: skip
                out["ingest"]["cpu_cores"] = cpu.result
                if prof_path is not None and prof_path.exists():
                    out["profile"] = {"file": str(prof_path), **summarize_pyspy(prof_path)}
                profile_ctx, prof_path = contextlib.nullcontext(), None
                if args.profile and service.pid is not None:
                    prof_path = Path(args.profile) / f"service-latency-{sync}.txt"
                    profile_ctx = Profiler(service.pid, prof_path)
                with profile_ctx, CpuMeter(pids) as cpu:
                    out["latency"] = await with_deadline(
                        latency(
                            nats_proc.url, samples=args.samples, bg_rate=args.bg_rate,
                            probes=args.probes, max_seconds=args.latency_seconds,
                        ),
                        args.latency_seconds + 120, "latency phase",
                    )  # fmt: skip
                out["latency"]["cpu_cores"] = cpu.result
                if prof_path is not None and prof_path.exists():
                    out["profile_latency"] = {"file": str(prof_path), **summarize_pyspy(prof_path)}
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.close(), 10)
            service.stop()
            service = None
            out["rebuild"] = await rebuild(nats_proc.url, work)
        except BaseException:
            if service is not None:
                print(f"--- service log tail ({sync}) ---\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            if service is not None:
                service.stop()
            nats_proc.stop()
    return out


# -- report ------------------------------------------------------------------------------------


def rows_for(run: dict[str, Any]) -> list[dict[str, Any]]:
    s = run["sync_interval"]
    raw, ing, lat, reb = run["raw_publish"], run["ingest"], run["latency"], run["rebuild"]
    floor = raw["msgs_per_s"]
    e2e_ratio = ing["e2e_events_per_s"] / floor
    bg_rate = lat["bg_achieved_per_s"]
    w2v, r2v, w2r = (
        lat["write_to_visible_ms"],
        lat["receipt_to_visible_ms"],
        lat["write_to_receipt_ms"],
    )
    return [
        {"metric": f"[{s}] raw JetStream publish ({raw['bytes']} B, {raw['window']} in flight)",
         "value": floor, "unit": "msg/s", "floor": None, "ratio": None, "target": None},
        {"metric": f"[{s}] ingest end-to-end (propose -> recall-visible)",
         "value": ing["e2e_events_per_s"], "unit": "ev/s", "floor": floor, "ratio": e2e_ratio,
         "target": ">= 25% of raw", "pass": e2e_ratio >= 0.25},
        {"metric": f"[{s}] ingest gate-only (propose -> last receipt)",
         "value": ing["gate_events_per_s"], "unit": "ev/s", "floor": floor,
         "ratio": ing["gate_events_per_s"] / floor, "target": None},
        {"metric": f"[{s}] write -> visible p50 ({lat['samples']} samples, bg {bg_rate:.0f} ev/s)",
         "value": w2v["p50"], "unit": "ms", "floor": None, "ratio": None,
         "target": "< 20 ms", "pass": w2v["p50"] < 20},
        {"metric": f"[{s}] write -> visible p99", "value": w2v["p99"], "unit": "ms",
         "floor": None, "ratio": None, "target": None},
        {"metric": f"[{s}] write -> receipt p50 / p99", "value": w2r["p50"], "value2": w2r["p99"],
         "unit": "ms", "floor": None, "ratio": None, "target": None},
        {"metric": f"[{s}] receipt -> visible p50 / p99", "value": r2v["p50"], "value2": r2v["p99"],
         "unit": "ms", "floor": None, "ratio": None, "target": None},
        {"metric": f"[{s}] rebuild {reb['log_messages']} events (floor: raw ordered read)",
         "value": reb["rebuild_events_per_s"], "unit": "ev/s", "floor": reb["read_msgs_per_s"],
         "ratio": reb["ratio"], "target": "(reported)"},
    ]  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    return metric_table(rows, "floor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events in the ingest phase")
    parser.add_argument("--sync", choices=("always", "1s", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--writers", type=int, default=4, help="SwarmClient instances (2 agents)")
    parser.add_argument("--concurrency", type=int, default=64, help="in-flight writes per client")
    parser.add_argument("--window", type=int, default=1000, help="raw publish: acks in flight")
    parser.add_argument("--warmup", type=int, default=200, help="untimed events before ingest")
    parser.add_argument("--samples", type=int, default=200, help="write-to-visible samples")
    parser.add_argument("--bg-rate", type=float, default=200.0, help="background events/s")
    parser.add_argument("--probes", type=int, default=4, help="concurrent author/reader pairs")
    parser.add_argument(
        "--latency-seconds", type=float, default=45.0, help="stop sampling after (s)"
    )
    parser.add_argument("--profile", default=None, help="py-spy the service into this dir")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    args = parser.parse_args(argv)
    quiet_logs()

    settings = ["always", "1s"] if args.sync == "both" else [args.sync]
    size = typical_proposal_bytes()
    started = time.perf_counter()

    async def all_settings() -> dict[str, Any]:
        return {s: await run_setting(s, args, size) for s in settings}

    runs = asyncio.run(with_deadline(all_settings(), args.timeout, "bench_ingest"))
    rows = [r for s in settings for r in rows_for(runs[s])]
    doc = {
        "bench": "ingest",
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k != "json"} | {"proposal_bytes": size},
        "seconds": time.perf_counter() - started,
        "runs": runs,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(table(rows))
        m = doc["machine"]
        print(f"\n{m['cores']} cores, Python {m['python']}, {m['nats_server']}; "
              f"{args.events} events, {args.writers} writers x {args.concurrency} in flight; "
              f"{doc['seconds']:.0f} s total")  # fmt: skip
        for s in settings:
            ing = runs[s]["ingest"]
            if ing["errors"]:
                print(f"[{s}] write errors: {ing['errors']}")
            print(
                f"[{s}] CPU in cores (2 = all) - ingest: {ing['cpu_cores']}, "
                f"latency phase: {runs[s]['latency']['cpu_cores']}; "
                f"projection lag at last receipt: {ing['projection_lag_at_last_receipt']} events"
            )
            if runs[s]["latency"]["misses"]:
                print(f"[{s}] recall misses: {runs[s]['latency']['misses']}")
    for s in settings:
        for key in ("profile", "profile_latency"):
            prof = runs[s].get(key)
            if not prof:
                continue
            print(
                f"\n[{s}] service py-spy, {key} ({prof['samples']} samples, {prof['file']})",
                file=sys.stderr,
            )
            threads = ", ".join(f"{k} {v}%" for k, v in prof["threads"].items())
            print(f"  threads: {threads}", file=sys.stderr)
            for f, p in prof["self_pct"][:15]:
                print(f"  self {p:5.1f}%  {f}", file=sys.stderr)
            for f, p in prof["inclusive_pct"][:25]:
                print(f"  incl {p:5.1f}%  {f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
