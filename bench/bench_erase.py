"""Erasure benchmark: what `swarm forget --erase` costs, next to its floors.

Usage::

    python bench/bench_erase.py [--rows 100000] [--repeat 3] [--json]

An erasure destroys a key (the keystore) and removes the plain text the recall
projection derived from the memory: LanceDB rows are rewritten away, since a
LanceDB ``delete`` only marks rows (their words stay in the data and index files
until a rewrite). On a recall table of ``--rows`` memories (the hashing embedder,
filled as the projector fills it), each run times:

- ``LanceRecall.scrub`` of one memory: read the table, write it again without the
  row, rebuild the full-text index, delete the old versions, reload the mirror;
- the floors: a LanceDB ``delete`` of one row (fast, and leaves the text on disk),
  and writing the same rows as a new table from Arrow (the least a rewrite costs);
- ``Keystore.destroy`` of one key among ``--rows`` keys (SQLite, secure delete).

Times are the median of ``--repeat`` runs, each on the table the run before left.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, quiet_logs, render_table
from projections.lance import LanceRecall
from swarm.embed import HashingEmbedder
from swarm.keystore import Keystore

WORDS = [
    "deploy",
    "billing",
    "staging",
    "postgres",
    "migration",
    "cache",
    "eviction",
    "resolver",
    "outage",
    "frontend",
    "backup",
    "window",
    "release",
    "train",
    "runbook",
    "rotation",
    "tea",
    "coffee",
    "budget",
    "meeting",
    "vendor",
    "invoice",
    "contract",
    "renewal",
    "latency",
    "error",
    "budget",
    "alert",
    "pager",
    "schedule",
]


def rows(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12))
        out.append(
            {
                "id": f"m{i:08d}",
                "content": f"{text} note {i}",
                "kind": "fact",
                "tags": ["ops"] if i % 3 else [],
                "agent": f"agent-{i % 4}",
                "private": False,
                "importance": 0.5,
                "seq": i + 1,
                "forgotten": False,
            }
        )
    return out


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def run(n: int, repeat: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-erase-"))
    try:
        recall = LanceRecall(work / "recall", HashingEmbedder(), optimize_every=0)
        data = rows(n)
        fill_started = time.perf_counter()
        for start in range(0, n, 20_000):
            recall.upsert(data[start : start + 20_000])
        recall.optimize()
        fill = time.perf_counter() - fill_started
        scrub, delete, rewrite = [], [], []
        for r in range(repeat):
            scrub.append(timed(recall.scrub, [f"m{r * 2:08d}"]))
            table = recall._table  # the floors, on the table as the scrub left it
            delete.append(timed(table.delete, f"id = 'm{r * 2 + 1:08d}'"))
            rewrite.append(
                timed(recall._db.create_table, "floor", table.to_arrow(), mode="overwrite")
            )
        recall.close()
        with Keystore(work / "keys.db") as keys:
            ids = [f"m{i:08d}" for i in range(n)]
            for start in range(0, n, 10_000):
                keys.issue(ids[start : start + 10_000], agent="bench")
            destroy = [timed(keys.destroy, [ids[r]], record="bench") for r in range(repeat)]
        return {
            "rows": n,
            "fill_seconds": fill,
            "scrub_s": statistics.median(scrub),
            "delete_s": statistics.median(delete),
            "rewrite_s": statistics.median(rewrite),
            "destroy_key_s": statistics.median(destroy),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    result = run(args.rows, args.repeat)
    result["machine"] = machine_info()
    if args.json:
        print(json.dumps(result, indent=2))
        return

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.1f} ms"

    print(
        render_table(
            ["step", f"{args.rows:,} memories", "floor", "floor is"],
            [
                [
                    "scrub one memory from recall (LanceDB rewrite)",
                    ms(result["scrub_s"]),
                    ms(result["rewrite_s"]),
                    "writing the same rows as a new table (Arrow)",
                ],
                ["", "", ms(result["delete_s"]), "LanceDB delete of one row (text stays on disk)"],
                ["destroy one key (keystore, secure delete)", ms(result["destroy_key_s"]), "", ""],
            ],
        )
    )
    load = result["machine"].get("loadavg_1_5_15")
    print(f"(recall table filled in {result['fill_seconds']:.1f} s; load {load})")


if __name__ == "__main__":
    main()
