"""Recall benchmark: load N synthetic memories into a fresh LanceRecall, time queries.

Usage::

    python bench/bench_recall.py [--sizes 10000,100000] [--queries 200] [--json]
                                 [--seed 7] [--batch 1000] [--k 10]
                                 [--lance-queries 20] [--ann]

For every size it reports the load rate (rows/s, embedding and automatic
optimizes included), one explicit ``optimize()``, and p50/p99 latency of the
``hybrid``, ``vector`` and ``text`` search modes next to exact numpy
brute force over the same vectors (the floor). ``recall@10`` compares vector
mode with the exact numpy top-10 of the rows visible to the query.
``lance-flat`` is LanceDB's own (unindexed) vector search on the same table,
and ``--ann`` adds an IVF_HNSW_SQ index for comparison (slow to build).

Texts are generated deterministically from word lists; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CAUSES, EVENTS, OUTCOMES, SYSTEMS
from projections.lance import LanceRecall
from swarm.embed import HashingEmbedder

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
KINDS = ("fact", "decision", "observation", "task")
TAGS = ("incident", "infra", "db", "frontend", "security", "cost", "oncall", "perf")
AGENTS = tuple(f"agent-{i:02d}" for i in range(20))


def make_text(rng: random.Random) -> str:
    sentence = (
        f"The {rng.choice(SYSTEMS)} {rng.choice(EVENTS)} {rng.choice(CAUSES)}; "
        f"{rng.choice(OUTCOMES)}."
    )
    if rng.random() < 0.5:
        sentence += f" Reported by {rng.choice(PEOPLE)} in ticket {rng.randint(100, 99999)}."
    return sentence


def make_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"mem-{i:08d}",
            "content": make_text(rng),
            "kind": rng.choice(KINDS),
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "agent": rng.choice(AGENTS),
            "private": rng.random() < 0.1,
            "importance": round(rng.random(), 3),
            "seq": i + 1,
            "forgotten": False,
        }
        for i in range(n)
    ]


def make_queries(n: int, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed + 1)
    out: list[tuple[str, str | None]] = []
    for _ in range(n):
        shape = rng.random()
        if shape < 0.4:
            q = f"{rng.choice(SYSTEMS)} {rng.choice(EVENTS).split()[0]}"
        elif shape < 0.8:
            q = f"{rng.choice(SYSTEMS)} {rng.choice(CAUSES)}"
        else:
            q = " ".join(rng.choice(OUTCOMES).split()[:6])
        requester = rng.choice(AGENTS) if rng.random() < 0.5 else None
        out.append((q, requester))
    return out


def timed(fn: Callable[[int], object], n: int, warmup: int = 5) -> list[float]:
    for i in range(min(warmup, n)):
        fn(i)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    embedder = HashingEmbedder()
    rows = make_rows(n, args.seed)
    queries = make_queries(args.queries, args.seed)
    result: dict[str, Any] = {"size": n, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-recall-") as tmp:
        store = LanceRecall(Path(tmp) / "recall", embedder)
        t0 = time.perf_counter()
        for lo in range(0, n, args.batch):
            store.upsert(rows[lo : lo + args.batch])
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.optimize()
        result["load_rows_per_s"] = n / load_s
        result["load_s"] = load_s
        result["optimize_s"] = time.perf_counter() - t0
        assert store.count() == n

        # The floor: exact brute force in numpy over the same vectors.
        matrix = embedder.embed([r["content"] for r in rows])
        qvecs = embedder.embed([q for q, _ in queries])
        private = np.array([r["private"] for r in rows])
        authors = np.array([r["agent"] for r in rows])
        k = args.k

        def exact(i: int) -> np.ndarray:
            scores = matrix @ qvecs[i]
            top = np.argpartition(-scores, k)[:k]
            return top[np.argsort(-scores[top])]

        def exact_visible(i: int) -> tuple[np.ndarray, float]:
            """Exact scores of rows visible to query i, and its k-th best positive score."""
            _, requester = queries[i]
            scores = matrix @ qvecs[i]
            scores[private & (authors != requester)] = -np.inf
            kth = float(np.partition(-scores, k - 1)[k - 1])
            return scores, max(-kth, 0.0)

        for mode in ("hybrid", "vector", "text"):

            def run(i: int, mode: str = mode) -> object:
                q, requester = queries[i]
                return store.search(q, k=k, requester=requester, mode=mode)  # type: ignore[arg-type]

            times = timed(run, len(queries))
            result["modes"][mode] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}

        # Tie-aware recall@k: a returned row counts if its exact score reaches the
        # exact k-th best (synthetic texts repeat, so equal scores are common).
        recalls = []
        for i, (q, requester) in enumerate(queries):
            scores, kth = exact_visible(i)
            wanted = min(k, int((scores > 0).sum()))
            if wanted == 0:
                continue
            got = store.search(q, k=k, requester=requester, mode="vector")
            good = sum(1 for h in got if scores[int(h["id"][4:])] >= kth - 1e-5)
            recalls.append(min(good, wanted) / wanted)
        result["modes"]["vector"]["recall_at_10"] = statistics.fmean(recalls) if recalls else 1.0

        times = timed(exact, len(queries))
        result["modes"]["numpy-exact"] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}

        # LanceDB's own vector search on the same table, for comparison.
        table: Any = store._table
        nq = min(args.lance_queries, len(queries))

        def lance_flat(i: int) -> object:
            query = table.search(qvecs[i]).distance_type("dot")
            return query.select(["id", "_distance"]).limit(k).to_arrow()

        if nq:
            times = timed(lance_flat, nq, warmup=2)
            result["modes"]["lance-flat"] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}
        if args.ann:
            from lancedb.index import HnswSq  # noqa: PLC0415

            t0 = time.perf_counter()
            table.create_index("vector", config=HnswSq(distance_type="dot"))
            result["ann_build_s"] = time.perf_counter() - t0
            times = timed(lance_flat, len(queries))
            hits = []
            for i in range(len(queries)):
                scores = matrix @ qvecs[i]
                kth = float(scores[exact(i)[-1]])
                got = lance_flat(i).column("id").to_pylist()  # type: ignore[attr-defined]
                hits.append(sum(1 for g in got if scores[int(g[4:])] >= kth - 1e-5) / k)
            result["modes"]["lance-hnsw-sq"] = {
                "p50_ms": pct(times, 0.5),
                "p99_ms": pct(times, 0.99),
                "recall_at_10": statistics.fmean(hits),
            }
        store.close()
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    header = ("rows", "load rows/s", "optimize s", "mode", "p50 ms", "p99 ms", "recall@10")
    lines = [header]
    for res in results:
        first = True
        for mode, m in res["modes"].items():
            lines.append(
                (
                    f"{res['size']:,}" if first else "",
                    f"{res['load_rows_per_s']:,.0f}" if first else "",
                    f"{res['optimize_s']:.2f}" if first else "",
                    mode,
                    f"{m['p50_ms']:.2f}",
                    f"{m['p99_ms']:.2f}",
                    f"{m['recall_at_10']:.3f}" if "recall_at_10" in m else "",
                )
            )
            first = False
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for j, line in enumerate(lines):
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    for res in results:
        if "ann_build_s" in res:
            print(f"IVF_HNSW_SQ build at {res['size']:,} rows: {res['ann_build_s']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated row counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print a JSON document instead")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000, help="rows per upsert")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--lance-queries", type=int, default=20, help="queries for LanceDB flat search (0: skip)"
    )
    parser.add_argument("--ann", action="store_true", help="also build and time IVF_HNSW_SQ")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results = []
    for n in sizes:
        if not args.json:
            print(f"benchmarking {n:,} rows ...", file=sys.stderr, flush=True)
        results.append(bench_size(n, args))
    if args.json:
        doc = {"embedder": HashingEmbedder().name, "queries": args.queries, "results": results}
        print(json.dumps(doc, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
