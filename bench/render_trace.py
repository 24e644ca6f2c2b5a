"""Capture one real trace of a write and render it as an SVG waterfall.

Usage::

    python bench/render_trace.py [--out docs/trace-example.svg] [--spans FILE]

Starts a private stack (nats-server, then `swarm up --nats`: the projector and reads,
the gate in its child) with ``OTEL_TRACES_EXPORTER=console`` and
``SWARM_TRACES_FILE``, so the service's processes append their spans to one JSON
Lines file; this process is the agent, exporting to the same file. After a warm-up
write, the agent opens its own span, remembers one memory and reads it back; the
trace of that span is drawn: one row per span, indented under its parent, a bar from
start to end coloured by process, and the span events (the gate's laws) as marks.
``--spans FILE`` renders a file captured before instead: the trace ``--trace ID``
(32 hex digits, as in a log line's ``trace_id``), or the last one with an
``agent.task`` span. No dependency beyond the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, NatsProcess, ServiceProcess, quiet_logs

ROW, TOP, LEFT, WIDTH, PAD = 24, 74, 270, 980, 16
COLOURS = {"agent": "#4c78a8", "gate": "#e45756", "projector": "#54a24b"}


@dataclass
class Span:
    name: str
    span_id: str
    parent: str | None
    start: float  # seconds since the trace began
    end: float
    process: str
    events: list[tuple[float, str]] = field(default_factory=list)
    children: list[Span] = field(default_factory=list)


def _t(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def load_trace(path: Path, trace_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The spans of one trace in a JSON Lines file: ``trace_id``, or the last trace
    with an ``agent.task`` span."""
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if trace_id is None:
        roots = [s for s in spans if s["name"] == "agent.task"]
        if not roots:
            raise SystemExit(f"no agent.task span in {path}: pass --trace ID")
        trace_id = roots[-1]["context"]["trace_id"]
    elif not trace_id.startswith("0x"):
        trace_id = f"0x{trace_id}"
    found = [s for s in spans if s["context"]["trace_id"] == trace_id]
    if not found:
        raise SystemExit(f"no span of trace {trace_id} in {path}")
    return trace_id, found


def build(raw: list[dict[str, Any]]) -> list[Span]:
    """The trace as trees: its roots (a span whose parent is not in the file is one)."""
    t0 = min(_t(s["start_time"]) for s in raw)
    roles: dict[Any, str] = {}  # process id -> the part it plays, from its spans' names
    for s in raw:
        pid = s["resource"]["attributes"].get("process.pid")
        if s["name"].startswith(("gate.", "log.")):
            roles[pid] = "gate"
        elif s["name"].startswith(("projector.", "api.")):
            roles.setdefault(pid, "projector")

    def process(s: dict[str, Any]) -> str:
        return roles.get(s["resource"]["attributes"].get("process.pid"), "agent")

    spans = {
        s["context"]["span_id"]: Span(
            name=s["name"],
            span_id=s["context"]["span_id"],
            parent=s["parent_id"],
            start=_t(s["start_time"]) - t0,
            end=_t(s["end_time"]) - t0,
            process=process(s),
            events=[
                (
                    _t(e["timestamp"]) - t0,
                    ": ".join(str(v) for v in (e.get("attributes") or {}).values()) or e["name"],
                )
                for e in s.get("events") or []
            ],
        )
        for s in raw
    }
    roots: list[Span] = []
    for span in sorted(spans.values(), key=lambda s: s.start):
        parent = spans.get(span.parent or "")
        (parent.children if parent else roots).append(span)
    return roots


def rows(roots: list[Span]) -> list[tuple[int, Span]]:
    out: list[tuple[int, Span]] = []

    def walk(span: Span, depth: int) -> None:
        out.append((depth, span))
        for child in span.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return out


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def render(roots: list[Span], trace_id: str) -> str:
    lines = rows(roots)
    total = max(s.end for _, s in lines)
    processes = len({s.process for _, s in lines})
    span_w = WIDTH - LEFT - PAD - 70

    def x(t: float) -> float:
        return LEFT + t / total * span_w

    height = TOP + ROW * len(lines) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{PAD}" y="24" font-size="15" font-weight="bold">'
        "One write, one trace: agent → inbox → gate → log → projections</text>",
        f'<text x="{PAD}" y="42" fill="#555">trace {escape(trace_id)} · '
        f"{_ms(total)} from its first span to its last · {processes} processes</text>",
    ]
    legend_x = PAD
    legend = {"agent": "agent (SDK)", "gate": "gate process", "projector": "projector process"}
    for name, colour in COLOURS.items():
        out.append(
            f'<rect x="{legend_x}" y="52" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="61" fill="#333">{legend[name]}</text>'
        )
        legend_x += 130
    for i in range(5):  # the time axis
        t = total * i / 4
        out.append(
            f'<line x1="{x(t):.1f}" y1="{TOP - 6}" x2="{x(t):.1f}" '
            f'y2="{TOP + ROW * len(lines)}" stroke="#e5e5e5"/>'
            f'<text x="{x(t):.1f}" y="{TOP - 9}" fill="#777" text-anchor="middle" '
            f'font-size="10">{_ms(t)}</text>'
        )
    for i, (depth, span) in enumerate(lines):
        y = TOP + i * ROW
        colour = COLOURS[span.process]
        width = max(x(span.end) - x(span.start), 1.5)
        out.append(
            f'<text x="{PAD + depth * 14}" y="{y + 15}" fill="#222">{escape(span.name)}</text>'
            f'<rect x="{x(span.start):.1f}" y="{y + 4}" width="{width:.1f}" height="14" '
            f'rx="2" fill="{colour}"/>'
            f'<text x="{x(span.start) + width + 4:.1f}" y="{y + 15}" fill="#555" '
            f'font-size="10">{_ms(span.end - span.start)}</text>'
        )
        for at, _ in span.events:
            out.append(f'<path d="M{x(at):.1f} {y + 1} l4 5 l-4 5 l-4 -5 z" fill="#222"/>')
        if span.events:
            marks = " · ".join(f"◆ {label}" for _, label in span.events)
            out.append(
                f'<text x="{x(span.start) + width + 60:.1f}" y="{y + 15}" fill="#222" '
                f'font-size="10">{escape(marks)}</text>'
            )
    out.append(
        f'<text x="{PAD}" y="{height - 14}" fill="#777" font-size="10">rendered by '
        "bench/render_trace.py from spans exported with OTEL_TRACES_EXPORTER=console "
        "and SWARM_TRACES_FILE</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


async def capture(spans: Path) -> None:
    """Run a private stack and one traced write; the spans land in ``spans``."""
    common = {
        "OTEL_TRACES_EXPORTER": "console",
        "SWARM_TRACES_FILE": str(spans),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    os.environ.update(common, OTEL_SERVICE_NAME="agent")
    from opentelemetry import trace  # noqa: PLC0415

    from swarm import telemetry  # noqa: PLC0415
    from swarm.client import SwarmClient  # noqa: PLC0415

    telemetry.configure()
    with tempfile.TemporaryDirectory(prefix="render-trace-") as tmp:
        work = Path(tmp)
        service_env = {**common, "OTEL_SERVICE_NAME": "swarm-memory"}
        with (
            NatsProcess(work / "nats") as nats_proc,
            ServiceProcess(nats_proc.url, swarm="demo", data_dir=work / "svc", env=service_env),
        ):
            async with await SwarmClient.connect(
                nats_proc.url, swarm="demo", agent="brad", instance="laptop"
            ) as agent:
                warm = await agent.remember("A warm-up memory: the first write opens the stores")
                await agent.get(warm.id, after=warm.seq)
                await asyncio.sleep(0.3)
                with trace.get_tracer("agent").start_as_current_span("agent.task"):
                    receipt = await agent.remember(
                        "The deploy key rotates on Mondays", tags=["ops"]
                    )
                await agent.get(receipt.id, after=receipt.seq)
                await agent.status()  # the projector has committed
                await asyncio.sleep(0.5)  # the service's last span batch
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "trace-example.svg"))
    parser.add_argument("--spans", default=None, help="render this JSON Lines file instead")
    parser.add_argument("--trace", default=None, help="the trace id to render from --spans")
    args = parser.parse_args(argv)
    quiet_logs()
    if args.spans:
        spans = Path(args.spans)
    else:
        spans = Path(tempfile.mkdtemp(prefix="render-trace-spans-")) / "spans.jsonl"
        asyncio.run(capture(spans))
    trace_id, raw = load_trace(spans, args.trace)
    roots = build(raw)
    Path(args.out).write_text(render(roots, trace_id), encoding="utf-8")
    print(f"{len(raw)} spans of trace {trace_id} -> {args.out} (spans: {spans})")
    for depth, span in rows(roots):
        print(f"  {'  ' * depth}{span.name:<30} {span.process:<10} {_ms(span.end - span.start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
