"""Run every benchmark in bench/ and print one combined table.

Usage::

    python bench/run_all.py [--quick] [--json] [--only ingest,recall] [--timeout S]

Each ``bench/bench_*.py`` runs as its own subprocess (one after another: the
benchmarks measure the machine, they must not share it) with ``--json``; with
``--quick`` the known ones get small sizes. The combined document (machine
info, each benchmark's own JSON, the merged rows) is written to
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_DIR, fmt_num, machine_info, render_table, run_json

#: Small sizes per benchmark for --quick (unknown benchmarks run with their defaults).
QUICK_ARGS: dict[str, list[str]] = {
    "ingest": [
        "--events", "3000", "--sync", "1s", "--warmup", "100", "--samples", "60",
        "--latency-seconds", "15",
    ],
    "recall": ["--sizes", "5000", "--queries", "50"],
    "duckdb": ["--rows", "10000", "--small", "500"],
    "rollback": ["--memories", "400", "--edits", "1", "--versions", "20"],
    "tracing": ["--events", "1500", "--rounds", "2", "--warmup", "50"],
    "replay": ["--events", "5000", "--recall-memories", "1000", "--queries", "30"],
}  # fmt: skip
#: Preferred order (anything else follows alphabetically).
ORDER = ("ingest", "recall", "duckdb")
LABEL_KEYS = ("metric", "name", "size", "mode", "sync_interval", "id")


def discover() -> dict[str, Path]:
    found = {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}
    ordered = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return {n: found[n] for n in ordered}


def _label(item: dict[str, Any], index: int) -> str:
    for key in LABEL_KEYS:
        if key in item and isinstance(item[key], str | int | float):
            return f"{key}={item[key]}" if key in ("size",) else str(item[key])
    return str(index)


def flatten(doc: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of a JSON document as (path, value); lists of objects are labelled."""
    out: list[tuple[str, float]] = []
    if isinstance(doc, bool) or doc is None:
        return out
    if isinstance(doc, int | float):
        if not (isinstance(doc, float) and math.isnan(doc)):
            out.append((prefix, float(doc)))
        return out
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("machine", "config", "seconds"):
                continue
            out += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            label = _label(item, i) if isinstance(item, dict) else str(i)
            out += flatten(item, f"{prefix}[{label}]")
    return out


def rows_of(name: str, outcome: dict[str, Any]) -> list[list[str]]:
    if not outcome.get("ok"):
        return [[name, "FAILED: " + str(outcome.get("error")), "", "", "", ""]]
    doc = outcome["result"]
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and "metric" in r for r in rows):
        table = []
        for r in rows:
            value = fmt_num(r.get("value"), r.get("unit", ""))
            if r.get("value2") is not None:
                value = (
                    f"{fmt_num(r['value'])} / {fmt_num(r['value2'])} {r.get('unit', '')}".rstrip()
                )
            target = r.get("target") or ""
            if "pass" in r:
                target = f"{target} {'PASS' if r['pass'] else 'FAIL'}".strip()
            ratio = r.get("ratio")
            table.append([
                name, str(r["metric"]), value, fmt_num(r.get("floor")),
                "" if ratio is None else f"{ratio:.1%}", target,
            ])  # fmt: skip
        return table
    return [[name, path, fmt_num(value), "", "", ""] for path, value in flatten(doc)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--json", action="store_true", help="print the combined JSON document")
    parser.add_argument("--only", default="", help="comma-separated names (ingest,recall,...)")
    parser.add_argument("--timeout", type=float, default=None, help="per benchmark (s)")
    args = parser.parse_args(argv)

    benches = discover()
    if args.only:
        wanted = {n.strip().removeprefix("bench_") for n in args.only.split(",") if n.strip()}
        unknown = wanted - benches.keys()
        if unknown:
            parser.error(
                f"no such benchmark: {', '.join(sorted(unknown))} (have {', '.join(benches)})"
            )
        benches = {n: p for n, p in benches.items() if n in wanted}
    timeout = args.timeout or (600.0 if args.quick else 1800.0)

    started = time.monotonic()
    outcomes: dict[str, dict[str, Any]] = {}
    for name, path in benches.items():
        cmd = [sys.executable, str(path), "--json"]
        if args.quick:
            cmd += QUICK_ARGS.get(name, [])
        print(f"running {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        outcome = run_json(cmd, timeout=timeout)
        outcome["cmd"] = cmd[1:]
        outcomes[name] = outcome
        status = "ok" if outcome["ok"] else f"FAILED ({outcome.get('error')})"
        print(f"  {name}: {status} in {outcome['seconds']:.0f} s", file=sys.stderr, flush=True)
        if not outcome["ok"] and outcome.get("stderr"):
            print("  " + outcome["stderr"].strip().replace("\n", "\n  ")[-1500:], file=sys.stderr)

    table_rows = [row for name, o in outcomes.items() for row in rows_of(name, o)]
    doc = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": time.monotonic() - started,
        "machine": machine_info(),
        "benches": outcomes,
        "rows": [
            dict(zip(("bench", "metric", "value", "floor", "ratio", "target"), r, strict=True))
            for r in table_rows
        ],
    }
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    latest = results / "latest.json"
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(latest)

    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(render_table(["bench", "metric", "value", "floor", "ratio", "target"], table_rows))
        m = doc["machine"]
        print(
            f"\n{m['cores']} cores, Python {m['python']}, {m['nats_server']}; "
            f"{doc['seconds']:.0f} s total; written to {latest}"
        )
    return 0 if all(o["ok"] for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
