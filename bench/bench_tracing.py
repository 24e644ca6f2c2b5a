"""Tracing cost: ingest throughput with tracing on (1% and 100% sampled) against off.

Usage::

    python bench/bench_tracing.py [--events 5000] [--rounds 5] [--sync 1s] [--json]
                                  [--writers 4] [--concurrency 64] [--warmup 200]
                                  [--with-metrics]

Each mode is configured as users configure it, by environment variables only, for
every process of the run: the service (`swarm up --nats`: projector and reads, the
gate in its child) and the load generator (a child of this script, so its tracer is
set up from scratch). Tracing on means ``OTEL_TRACES_EXPORTER=otlp`` with
``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and ``OTEL_TRACES_SAMPLER_ARG`` 0.01
or 1.0: the agent's SDK decides, the gate and the projector follow its decision.
Spans go over OTLP/HTTP to a sink (a child process that counts and drops them), as
they would to a collector; its CPU is not counted. ``--with-metrics`` adds a mode
with metrics only (``OTEL_METRICS_EXPORTER=otlp``, exported every second).

A run is the ingest phase of ``bench_ingest.py`` (``--events`` remembers from
``--writers`` clients, timed until the last one is recall-visible; the gate-only rate
until the last receipt) on a fresh nats-server and service. The modes alternate
within each round, so drift on a shared machine hits them alike; each mode's number
is the median of its rounds, and the ratio is to tracing off in the same run. CPU per
event adds the service's, the gate's and the load generator's CPU over the whole run.

Ingest on a shared machine varies by several percent from run to run, more than 1%
sampling costs, so the same modes are also timed in process without I/O: the
tracing work of one write in the agent (its span, the publish span, the header) and
in the gate (extract, ``gate.check`` with a law event, ``log.append``), each mode in a
fresh process (``--micro-only`` runs just that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    NatsProcess,
    ServiceProcess,
    cpu_seconds,
    kill_group,
    machine_info,
    metric_table,
    quiet_logs,
)

SWARM = "bench"  # bench_ingest's writers use this swarm
#: The ceiling on what 1% sampling may cost, as a share of tracing-off throughput.
TARGET = 0.05
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "1%": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "100%": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER_ARG": "1.0"},
}
METRICS_MODE = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}


def mode_env(mode: dict[str, str], endpoint: str) -> dict[str, str]:
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "SWARM_LOG_LEVEL": "warning",
    }
    return env | mode


# -- the OTLP sink (a child process) -----------------------------------------------------------


def serve_sink(port_file: Path) -> int:
    """Accept OTLP/HTTP posts, count them, drop them; GET /stats answers the counts."""
    counts = {"requests": 0, "bytes": 0, "traces": 0, "metrics": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                counts["requests"] += 1
                counts["bytes"] += len(body)
                counts["traces" if self.path.endswith("/traces") else "metrics"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


class Sink:
    def __init__(self, work: Path) -> None:
        self.port_file = work / "sink.port"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> Sink:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "sink", str(self.port_file)], start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not self.port_file.exists() or not self.port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the OTLP sink did not start")
            time.sleep(0.02)
        self.endpoint = f"http://127.0.0.1:{self.port_file.read_text()}"
        return self

    def stats(self) -> dict[str, int]:
        import urllib.request  # noqa: PLC0415

        with urllib.request.urlopen(f"{self.endpoint}/stats", timeout=5) as answer:
            stats: dict[str, int] = json.loads(answer.read())
        return stats

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            kill_group(self.proc.pid)


# -- the load generator (a child process) --------------------------------------------------


def run_load(argv: list[str]) -> int:
    """Configure telemetry from the environment, run bench_ingest's ingest phase, print
    its JSON (with this process's CPU seconds)."""
    parser = argparse.ArgumentParser(prog="bench_tracing.py load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--writers", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args(argv)
    quiet_logs()
    from opentelemetry import trace  # noqa: PLC0415

    from bench.bench_ingest import ingest  # noqa: PLC0415
    from swarm import telemetry  # noqa: PLC0415
    from swarm.client import SwarmClient  # noqa: PLC0415

    telemetry.configure("bench-agents")

    async def main() -> dict[str, Any]:
        reader = await SwarmClient.connect(
            args.url, swarm=SWARM, agent="reader", instance="i0", timeout=30
        )
        try:
            return await ingest(
                args.url,
                count=args.events,
                writers=args.writers,
                concurrency=args.concurrency,
                warmup=args.warmup,
                reader=reader,
            )
        finally:
            await reader.close()

    started = cpu_seconds()
    result = asyncio.run(main())
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    result["load_cpu_s"] = cpu_seconds() - started
    print(json.dumps(result, default=str))
    return 0


def load_once(url: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "load", "--url", url, "--events", str(args.events),
        "--writers", str(args.writers), "--concurrency", str(args.concurrency),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        kill_group(proc.pid)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# -- one run, the rounds ----------------------------------------------------------------------


def one_run(name: str, env: dict[str, str], args: argparse.Namespace, sink: Sink) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-tracing-{name.rstrip('%')}-") as tmp:
        work = Path(tmp)
        with (
            NatsProcess(work / "nats", sync_interval=args.sync) as nats_proc,
            ServiceProcess(nats_proc.url, swarm=SWARM, data_dir=work / "svc", env=env) as svc,
        ):
            pids = [p for p in (svc.pid, svc.gate_pid) if p is not None]
            before = sum(cpu_seconds(p) for p in pids)
            sent_before = sink.stats()
            result = load_once(nats_proc.url, env, args)
            service_cpu = sum(cpu_seconds(p) for p in pids) - before
            time.sleep(0.3)  # the service's last span batch
            sent = {k: v - sent_before[k] for k, v in sink.stats().items()}
    events = result["accepted"] + args.warmup
    return {
        "mode": name,
        "e2e_events_per_s": result["e2e_events_per_s"],
        "gate_events_per_s": result["gate_events_per_s"],
        "cpu_us_per_event": (service_cpu + result["load_cpu_s"]) * 1e6 / events,
        "service_cpu_s": service_cpu,
        "load_cpu_s": result["load_cpu_s"],
        "errors": result["errors"],
        "exported": sent,
    }


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    modes = dict(MODES)
    if args.with_metrics:
        modes["metrics"] = METRICS_MODE
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-tracing-sink-") as tmp:
        sink = Sink(Path(tmp)).start()
        try:
            for r in range(args.rounds):
                # rotate the order each round: no mode always runs first (or last)
                names = list(modes)
                names = names[r % len(names) :] + names[: r % len(names)]
                for name in names:
                    run = one_run(name, mode_env(modes[name], sink.endpoint), args, sink)
                    run["round"] = r + 1
                    runs.append(run)
                    print(
                        f"round {r + 1} {name:>7}: {run['e2e_events_per_s']:,.0f} ev/s e2e, "
                        f"{run['gate_events_per_s']:,.0f} ev/s gate, "
                        f"{run['cpu_us_per_event']:,.0f} µs CPU/ev, "
                        f"{run['exported']['bytes'] / 1e6:.1f} MB exported",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            sink.stop()
    medians = {
        name: {
            key: statistics.median(r[key] for r in runs if r["mode"] == name)
            for key in ("e2e_events_per_s", "gate_events_per_s", "cpu_us_per_event")
        }
        for name in modes
    }
    return {"runs": runs, "medians": medians}


def rows_for(medians: dict[str, dict[str, float]], rounds: int) -> list[dict[str, Any]]:
    off = medians["off"]
    rows: list[dict[str, Any]] = []
    for name, m in medians.items():
        label = "tracing off" if name == "off" else f"tracing {name} sampled"
        if name == "metrics":
            label = "metrics on (tracing off)"
        for key, unit, what in (
            ("e2e_events_per_s", "ev/s", "ingest end-to-end"),
            ("gate_events_per_s", "ev/s", "ingest gate-only"),
        ):
            ratio = None if name == "off" else m[key] / off[key]
            row: dict[str, Any] = {
                "metric": f"{what}, {label} (median of {rounds})",
                "value": m[key],
                "unit": unit,
                "floor": None if name == "off" else off[key],
                "ratio": ratio,
                "target": None,
            }
            if name == "1%" and key == "e2e_events_per_s":
                row["target"] = f">= {1 - TARGET:.0%} of off"
                row["pass"] = ratio is not None and ratio >= 1 - TARGET
            rows.append(row)
        rows.append(
            {
                "metric": f"  CPU per event, {label}",
                "value": m["cpu_us_per_event"],
                "unit": "µs",
                "floor": None if name == "off" else off["cpu_us_per_event"],
                "ratio": None if name == "off" else m["cpu_us_per_event"] / off["cpu_us_per_event"],
                "target": None,
            }
        )
    return rows


# -- the tracing work of one write, in process ------------------------------------------


def run_micro(ratio: str, number: int = 20_000) -> int:
    """Time the agent's and the gate's tracing work for one write (``ratio``: the
    sampler's argument, or ``off``); print JSON µs per write."""
    import timeit  # noqa: PLC0415

    if ratio != "off":
        os.environ.update(
            OTEL_TRACES_EXPORTER="console",
            SWARM_TRACES_FILE=os.devnull,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=ratio,
        )
    from swarm import telemetry  # noqa: PLC0415

    telemetry.configure()
    tracer, ids = telemetry.tracer, {"event_id": "0" * 26, "memory_id": "1" * 26}

    def agent() -> dict[str, str]:
        with (
            tracer.start_as_current_span("swarm.memory.remembered", attributes=ids),
            tracer.start_as_current_span("inbox.publish"),
        ):
            return telemetry.inject({"Swarm-Reply": "_INBOX.reply"})

    proposals = [agent() for _ in range(1000)]  # as many sampled as the ratio says

    def gate() -> None:
        for headers in proposals:
            with tracer.start_as_current_span(
                "gate.check", context=telemetry.extract(headers), attributes=ids
            ) as span:
                span.add_event("law", {"law": "no-private-data", "verdict": "pass"})
                parent = span.get_span_context()
            entry: dict[str, str] = {}
            telemetry.finish_append(
                telemetry.start_append(parent, headers, entry), 1, duplicate=False
            )

    result = {
        "agent_us": timeit.timeit(agent, number=number) / number * 1e6,
        "gate_us": timeit.timeit(gate, number=number // 1000) / number * 1e6,
    }
    print(json.dumps(result))
    return 0


def micro() -> dict[str, dict[str, float]]:
    out = {}
    for name, ratio in (("off", "off"), ("1%", "0.01"), ("100%", "1.0")):
        done = subprocess.run(
            [sys.executable, __file__, "micro", ratio],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def micro_rows(costs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    off = costs["off"]
    return [
        {
            "metric": f"  tracing work per write in the {where}, {name} sampled",
            "value": costs[name][key],
            "unit": "µs",
            "floor": off[key],
            "ratio": None,
            "target": f"+{costs[name][key] - off[key]:.1f} µs vs off",
        }
        for name in ("1%", "100%")
        for where, key in (("agent", "agent_us"), ("gate", "gate_us"))
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sink"]:
        return serve_sink(Path(argv[1]))
    if argv[:1] == ["load"]:
        return run_load(argv[1:])
    if argv[:1] == ["micro"]:
        return run_micro(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="events per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per mode")
    parser.add_argument("--sync", choices=("always", "1s"), default="1s")
    parser.add_argument("--writers", type=int, default=4, help="SwarmClient instances (2 agents)")
    parser.add_argument("--concurrency", type=int, default=64, help="in-flight writes per client")
    parser.add_argument("--warmup", type=int, default=200, help="untimed events before ingest")
    parser.add_argument("--with-metrics", action="store_true", help="add a metrics-only mode")
    parser.add_argument("--micro-only", action="store_true", help="only the in-process timing")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    quiet_logs()
    started = time.perf_counter()
    result: dict[str, Any] = {"micro": micro()}
    rows = []
    if not args.micro_only:
        result |= run_all(args)
        rows = rows_for(result["medians"], args.rounds)
    rows += micro_rows(result["micro"])
    doc = {
        "bench": "tracing",
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "seconds": time.perf_counter() - started,
        **result,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(metric_table(rows, "tracing off"))
        m = doc["machine"]
        print(
            f"\n{m['cores']} cores, Python {m['python']}, {m['nats_server']}; "
            f"{args.events} events x {args.rounds} rounds per mode, sync {args.sync}; "
            f"off: agent {result['micro']['off']['agent_us']:.1f} µs, "
            f"gate {result['micro']['off']['gate_us']:.1f} µs of tracing work per write; "
            f"{doc['seconds']:.0f} s total"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
