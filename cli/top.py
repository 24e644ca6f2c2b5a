"""``swarm top``: the service's numbers, redrawn in the terminal every few seconds.

The numbers are those of ``swarm status`` (the service's ``status`` operation: the
same values the metrics export), plus rates between two frames. ``--once`` prints
one frame; ``--json`` prints each frame as one JSON object per line.

The command takes the connection options of :mod:`cli.main`, which passes them in
(importing that module from here would run it twice under ``python -m``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import click

from cli.common import run_async
from swarm.errors import SwarmError

__all__ = ["frame_text", "make_top"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
#: Counters shown with a rate per second between two frames.
RATES = ("proposed", "accepted", "rejected")
CLEAR = "\x1b[H\x1b[2J"


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TB"  # pragma: no cover - the loop returns at GB


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def frame_text(frame: dict[str, Any], *, header: str = "") -> str:
    """One frame for people: ingest, refusals, projection, recall, streams, memories."""
    rates = frame.get("rates") or {}

    def counter(key: str) -> str:
        rate = rates.get(key)
        return f"{key} {_n(frame.get(key))}" + ("" if rate is None else f" ({rate:+,.1f}/s)")

    laws = frame.get("rejections_by_law") or {}
    recall = frame.get("recall_latency_ms") or {}
    streams = frame.get("stream_bytes") or {}
    lag_s = frame.get("lag_seconds")
    lines = [
        f"swarm {frame.get('swarm')}  {frame.get('at', '')[:19].replace('T', ' ')} UTC{header}",
        "",
        "ingest      " + "   ".join(counter(key) for key in RATES),
        "refusals    "
        + (", ".join(f"{law} {_n(n)}" for law, n in laws.items()) if laws else "none"),
        f"projection  log seq {_n(frame.get('log_seq'))}   projected "
        f"{_n(frame.get('projected_seq'))}   lag {_n(frame.get('lag'))} events, "
        + ("-" if lag_s is None else f"{lag_s:,.1f} s"),
        f"recall      p50 {_ms(recall.get('p50'))}   p90 {_ms(recall.get('p90'))}   "
        f"p99 {_ms(recall.get('p99'))}   over the last {_n(recall.get('n', 0))} recalls",
        f"streams     LOG {_bytes(streams.get('LOG'))}   INBOX {_bytes(streams.get('INBOX'))}"
        f"   REJECTED {_bytes(streams.get('REJECTED'))}   inbox waiting {_n(frame.get('inbox'))}",
        f"memories    {_n(frame.get('memories'))} live   {_n(frame.get('forgotten'))} forgotten"
        f"   pending approvals {_n(frame.get('pending_approvals'))}",
    ]
    return "\n".join(lines)


class Frames:
    """Status answers turned into frames: a time stamp and rates since the last one."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, Any]] | None = None

    def next(self, status: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        rates: dict[str, float | None] = dict.fromkeys(RATES)
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-6)
            for key in RATES:
                if isinstance(status.get(key), int) and isinstance(before.get(key), int):
                    rates[key] = round((status[key] - before[key]) / elapsed, 2)
        self._last = (now, status)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return {**status, "at": at, "rates": rates}


@contextlib.contextmanager
def _keys(quit_: asyncio.Event) -> Iterator[None]:
    """While the terminal is ours: single keys without Enter, ``q`` sets ``quit_``."""
    if not sys.stdin.isatty():
        yield
        return
    import termios  # noqa: PLC0415 - POSIX only, and only for a terminal
    import tty  # noqa: PLC0415

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def on_key() -> None:
        if os.read(fd, 1) in (b"q", b"Q"):
            quit_.set()

    tty.setcbreak(fd)  # Ctrl-C still interrupts
    loop.add_reader(fd, on_key)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def watch(
    status: Callable[[], Any],
    *,
    interval: float,
    count: int | None,
    as_json: bool,
    out: Callable[[str], None] = click.echo,
) -> None:
    """Print ``count`` frames (None: until ``q`` or Ctrl-C), one every ``interval`` s."""
    frames, shown, quit_ = Frames(), 0, asyncio.Event()
    redraw = not as_json and count != 1 and sys.stdout.isatty()
    header = f"   every {interval:g} s, q quits" if redraw else ""
    with _keys(quit_) if count != 1 else contextlib.nullcontext():
        while count is None or shown < count:
            started = time.monotonic()
            try:
                frame = frames.next(await status())
            except SwarmError as err:
                if count == 1:
                    raise
                frame = {"error": str(err), "at": datetime.now(UTC).isoformat()}
            if as_json:
                out(json.dumps(frame, default=str))
            elif "error" in frame:
                out(f"{CLEAR if redraw else ''}waiting for the service: {frame['error']}")
            else:
                out((CLEAR if redraw else "") + frame_text(frame, header=header))
                if not redraw and count != 1:
                    out("")
            shown += 1
            if count is not None and shown >= count:
                return
            wait = max(0.0, interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(quit_.wait(), wait)
            if quit_.is_set():
                return


def make_top(connection_options: Decorator) -> click.Command:
    """The ``swarm top`` command."""

    @click.command(name="top", context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--interval",
        type=click.FloatRange(min=0.1),
        default=2.0,
        show_default=True,
        help="Seconds between two frames.",
    )
    @click.option("--once", is_flag=True, help="Print one frame and exit.")
    @click.option(
        "-n", "--count", type=click.IntRange(min=1), default=None, help="Stop after N frames."
    )
    @connection_options
    @run_async
    async def top(ctx: Any, interval: float, once: bool, count: int | None) -> None:
        """Live ingest, refusals, lag, recall latency and stream sizes (q quits)."""
        async with await ctx.client() as client:
            await watch(
                client.status, interval=interval, count=1 if once else count, as_json=ctx.as_json
            )

    return top
