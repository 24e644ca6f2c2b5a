"""Shared helpers for the benchmarks: tables, percentiles, machine info, processes.

The service (gate + projector + read API) runs in its own process, started by
:class:`ServiceProcess` as ``python bench/common.py serve ...``; nats-server runs
as its own process (:class:`NatsProcess`); the load generator stays in the
benchmark's process. Every child is started in a new session and its whole
process group is killed on stop, on error and at exit.

Run directly only by :class:`ServiceProcess`::

    python bench/common.py serve --url URL --swarm NAME --data-dir DIR --ready FILE
                                 [--cprofile FILE]
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "BENCH_DIR",
    "ROOT",
    "CpuMeter",
    "NatsProcess",
    "ServiceProcess",
    "fmt_num",
    "kill_group",
    "machine_info",
    "percentile",
    "quiet_logs",
    "read_log",
    "render_table",
    "summary",
]

# -- numbers and tables -------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, max of ``values``."""
    return {
        "n": len(values),
        "mean": (sum(values) / len(values)) if values else math.nan,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def fmt_num(value: Any, unit: str = "") -> str:
    """A compact human number: 12,345 / 12.3 / 0.123 (+ unit); '-' for None/NaN."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "-"
    v = float(value)
    if abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif abs(v) >= 100:
        text = f"{v:.0f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.2f}"
    return f"{text} {unit}".rstrip() if unit else text


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An aligned plain-text table; numbers right-aligned, text left-aligned."""
    body = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def is_num(cell: str) -> bool:
        head = cell.split(" ", maxsplit=1)[0].replace(",", "").replace("%", "").lstrip("x")
        try:
            float(head)
        except ValueError:
            return False
        return True

    def line(cells: Sequence[str], header: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            if not header and i > 0 and is_num(cell):
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell.ljust(widths[i]))
        return " | ".join(out).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(list(headers), header=True), sep, *(line(r) for r in body)])


async def read_log(log: Any, batch: int = 1000) -> int:
    """The floor of a replay: a raw ordered consumer read of a swarm's whole LOG
    (``JetStreamLog.read``, nothing decoded). Returns the messages read."""
    n = 0
    async for messages in log.read(start_seq=1, batch=batch):
        n += len(messages)
    return n


# -- environment ----------------------------------------------------------------------------


def quiet_logs(level: int = logging.WARNING) -> None:
    """Send structlog output to stderr and drop anything below ``level``.

    Keeps ``--json`` output on stdout clean (NatsServer logs at debug).
    """
    import structlog  # noqa: PLC0415

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def nats_server_version() -> str:
    try:
        from swarm.server import find_nats_server  # noqa: PLC0415

        out = subprocess.run(
            [find_nats_server(), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return (out.stdout or out.stderr).strip()
    except Exception as err:
        return f"unknown ({err})"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "nats_server": nats_server_version(),
    }
    with contextlib.suppress(Exception):
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        # other work on the box skews every number: record how busy it was
        info["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(Exception):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import importlib.metadata as md  # noqa: PLC0415

        info["packages"] = {
            name: md.version(name) for name in ("nats-py", "duckdb", "lancedb", "automerge")
        }
    return info


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one if ``pid`` is None), all threads."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


class CpuMeter:
    """CPU used by named processes over a phase, in cores (1.0 = one core busy)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start: dict[str, float] = {}
        self.t0 = 0.0
        self.result: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        self.result = {
            name: round((cpu_seconds(pid) - self.start[name]) / wall, 2) if wall > 0 else math.nan
            for name, pid in self.pids.items()
        }


def metric_table(rows: list[dict[str, Any]], floor_header: str = "floor") -> str:
    """The shared table of a bench's metric rows (value, floor, ratio, target, PASS/FAIL)."""

    def value(r: dict[str, Any]) -> str:
        if "value2" in r:
            return f"{fmt_num(r['value'])} / {fmt_num(r['value2'])} {r['unit']}"
        return fmt_num(r["value"], r["unit"])

    def target(r: dict[str, Any]) -> str:
        t = r.get("target") or ""
        if "pass" in r:
            t = f"{t} {'PASS' if r['pass'] else 'FAIL'}"
        return t

    return render_table(
        ["metric", "value", floor_header, "ratio", "target"],
        [
            [
                r["metric"],
                value(r),
                "" if r["floor"] is None else fmt_num(r["floor"], r["unit"]),
                "" if r["ratio"] is None else f"{r['ratio']:.1%}",
                target(r),
            ]
            for r in rows
        ],
    )


# -- synthetic memory texts (shared by the benchmarks; no digits, nothing a law flags) --

SYSTEMS = (
    "billing service", "auth gateway", "search index", "payments api", "user database",
    "event bus", "cache layer", "deploy pipeline", "metrics store", "web frontend",
    "mobile app", "recommendation model", "email worker", "feature flags", "data warehouse",
    "kafka cluster", "redis cache", "postgres primary", "dns resolver", "load balancer",
)  # fmt: skip
EVENTS = (
    "failed after", "recovered after", "slowed down during", "was rolled back after",
    "ran out of memory during", "started timing out after", "was upgraded before",
    "lost connections during", "doubled its latency after", "was patched following",
    "threw certificate errors after", "hit the rate limit during",
)  # fmt: skip
CAUSES = (
    "the friday release", "a schema migration", "a config change", "the traffic spike",
    "the region failover", "a dependency bump", "the nightly batch job", "a cache flush",
    "the certificate rotation", "a noisy neighbour", "the index rebuild", "a network partition",
)  # fmt: skip
OUTCOMES = (
    "the fix was to raise the connection pool size",
    "we pinned the previous version until the vendor ships a patch",
    "adding a retry with jitter solved it",
    "the root cause was a missing index on the orders table",
    "customers in europe saw errors for twenty minutes",
    "alerting did not fire because the threshold was too high",
    "the runbook needs a step for draining the queue first",
    "rolling restarts cleared the stuck workers",
    "a feature flag now guards the new code path",
    "the team agreed to add a canary stage",
)  # fmt: skip

# -- child processes ------------------------------------------------------------------------

_children: set[int] = set()


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` (children start their own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_all_children() -> None:
    for pid in list(_children):
        kill_group(pid)
    _children.clear()


atexit.register(_kill_all_children)


def _install_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks (and atexit) run."""

    def _raise(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _raise)


_install_sigterm()


def _stop_proc(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None:
        return
    try:
        if proc.poll() is None:
            kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        else:
            kill_group(proc.pid, signal.SIGKILL)  # stragglers in its group
    finally:
        _children.discard(proc.pid)


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class NatsProcess:
    """nats-server with JetStream in ``store_dir`` (config written by swarm.server.NatsServer)."""

    def __init__(self, store_dir: Path, *, sync_interval: str = "1s") -> None:
        from swarm.server import NatsServer, free_port  # noqa: PLC0415

        self.server = NatsServer(store_dir, port=free_port(), sync_interval=sync_interval)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int | None:
        proc = self.server._proc
        return proc.pid if proc is not None else None

    def start(self, timeout: float = 15.0) -> NatsProcess:
        self.server.start(timeout)
        if self.pid is not None:
            _children.add(self.pid)
        return self

    def stop(self) -> None:
        pid = self.pid
        try:
            self.server.stop(timeout=10)
        finally:
            if pid is not None:
                kill_group(pid)
                _children.discard(pid)

    def __enter__(self) -> NatsProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess:
    """The service as users run it: `swarm up --nats URL` (projector + reads in this
    process, the gate in its child). With ``in_process_gate`` (or a cProfile), the
    older one-process layout (`common.py serve`) instead."""

    def __init__(
        self,
        url: str,
        *,
        swarm: str,
        data_dir: Path,
        cprofile: Path | None = None,
        env: dict[str, str] | None = None,
        in_process_gate: bool = False,
    ) -> None:
        self.url = url
        self.swarm = swarm
        self.data_dir = Path(data_dir)
        self.cprofile = cprofile
        self.env = env or {}
        self.single = in_process_gate or cprofile is not None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "service.log"
        self.ready_path = self.data_dir / "service.ready"
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def gate_pid(self) -> int | None:
        pid = self.info.get("gate_pid")
        return int(pid) if pid else None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.ready_path.unlink()
        if self.single:
            cmd = [
                sys.executable, str(Path(__file__).resolve()), "serve",
                "--url", self.url, "--swarm", self.swarm,
                "--data-dir", str(self.data_dir), "--ready", str(self.ready_path),
            ]  # fmt: skip
            if self.cprofile is not None:
                cmd += ["--cprofile", str(self.cprofile)]
        else:
            cmd = [
                sys.executable, "-m", "cli.main", "up", "--nats", self.url, "--name", self.swarm,
                "--data", str(self.data_dir), "--json",
            ]  # fmt: skip
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("SWARM_LOG_LEVEL", "warning")
        with self.log_path.open("ab") as logfile:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE if not self.single else logfile,
                stderr=logfile if not self.single else subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True, cwd=ROOT,
            )  # fmt: skip
        _children.add(self.proc.pid)
        if not self.single:
            return self._await_up_line(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"service exited with status {self.proc.returncode}:\n{_tail(self.log_path)}"
                )
            if self.ready_path.exists():
                with contextlib.suppress(ValueError, OSError):
                    self.info = json.loads(self.ready_path.read_text())
                    return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"service not ready in {timeout}s:\n{_tail(self.log_path)}")

    def _await_up_line(self, timeout: float) -> ServiceProcess:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        line = result[0] if result else b""
        if not line.startswith(b"{"):
            self.stop()
            raise RuntimeError(f"swarm up did not start:\n{_tail(self.log_path)}")
        self.info = json.loads(line)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        _stop_proc(proc, timeout)

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_json(cmd: Sequence[str], *, timeout: float, cwd: Path | None = None) -> dict[str, Any]:
    """Run a command in its own process group; parse its stdout as JSON.

    Returns ``{"ok": True, "result": ..., "seconds": ...}`` or ``{"ok": False, "error": ...}``.
    """
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        cwd=str(cwd or ROOT), env=env, start_new_session=True,
    )  # fmt: skip
    _children.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, err = proc.communicate()
        return {
            "ok": False,
            "seconds": time.monotonic() - start,
            "error": f"timed out after {timeout:.0f}s",
            "stderr": err.decode(errors="replace")[-2000:],
        }
    finally:
        kill_group(proc.pid)  # anything it left behind in its group
        _children.discard(proc.pid)
    seconds = time.monotonic() - start
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        return {
            "ok": False, "seconds": seconds, "error": f"exit status {proc.returncode}",
            "stderr": err.decode(errors="replace")[-2000:],
        }  # fmt: skip
    try:
        return {"ok": True, "seconds": seconds, "result": json.loads(text)}
    except json.JSONDecodeError:
        # tolerate log lines before the document: take the last top-level JSON object
        idx = text.find("\n{")
        while idx != -1:
            with contextlib.suppress(json.JSONDecodeError):
                return {"ok": True, "seconds": seconds, "result": json.loads(text[idx + 1 :])}
            idx = text.find("\n{", idx + 1)
        return {
            "ok": False,
            "seconds": seconds,
            "error": "stdout is not JSON",
            "stdout": text[-2000:],
        }


def which(name: str) -> str | None:
    """An executable next to this Python first (the venv), then on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


# -- the service child ----------------------------------------------------------------------


def _serve(argv: Sequence[str]) -> int:
    import argparse  # noqa: PLC0415
    import asyncio  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="bench/common.py serve")
    parser.add_argument("--url", required=True)
    parser.add_argument("--swarm", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--cprofile", default=None)
    args = parser.parse_args(argv)
    quiet_logs(logging.INFO)

    # Diagnostics hook: a Python file run before the service starts (e.g. to wrap
    # methods with timers); it may define ``at_exit()``, called after the service stops.
    preload_ns: dict[str, Any] = {}
    preload = os.environ.get("SWARM_BENCH_SERVICE_PRELOAD")
    if preload:
        preload_ns["__file__"] = preload
        exec(compile(Path(preload).read_text(), preload, "exec"), preload_ns)

    from projections.service import SwarmService  # noqa: PLC0415

    profiler = None
    if args.cprofile:
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()

    async def main() -> None:
        service = SwarmService(args.url, swarm=args.swarm, data_dir=args.data_dir)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
        await service.start()
        try:
            ready = Path(args.ready)
            tmp = ready.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), **service.paths}))
            tmp.replace(ready)
            if profiler is not None:
                profiler.enable()
            await service.wait_closed()
        finally:
            if profiler is not None:
                profiler.disable()
            await asyncio.wait_for(service.stop(), 30)

    try:
        asyncio.run(main())
    finally:
        if profiler is not None:
            profiler.dump_stats(args.cprofile)
        if callable(preload_ns.get("at_exit")):
            preload_ns["at_exit"]()
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
