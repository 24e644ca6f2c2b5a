"""``swarm export`` and ``swarm import``: carry an agent's memories across models.

``export`` writes a bundle (SOUL.md, MEMORY.md, memory/<topic>.md, bundle.json,
memories.jsonl; see :mod:`swarm.bundle`); ``import`` writes a bundle's memories
into a swarm as ordinary events, idempotently (see :mod:`swarm.transfer`).

The commands take the connection options of :mod:`cli.main`, which passes them
in (importing that module from here would run it twice under ``python -m``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cli.common import _fail, run_async
from swarm.bundle import read_bundle
from swarm.client import SwarmClient
from swarm.errors import ConfigError
from swarm.identity import Credentials
from swarm.transfer import export_bundle, import_bundle, import_plan

__all__ = ["register_bundle_commands"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Emit = Callable[[Any, Any, Callable[[Any], str]], None]

#: Imports of at least this many memories report their progress on stderr.
PROGRESS_FROM = 100


def _agent_given() -> bool:
    """Whether ``--agent`` (or SWARM_AGENT) was given, rather than defaulted."""
    source = click.get_current_context().get_parameter_source("agent")
    return source not in (None, ParameterSource.DEFAULT)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _progress(total: int) -> Callable[[int, int], None] | None:
    if total < PROGRESS_FROM:
        return None
    shown = 0.0

    def report(done: int, total: int) -> None:
        nonlocal shown
        now = time.monotonic()
        if done == total or now - shown >= 1.0:
            shown = now
            click.echo(f"imported {done}/{total}", err=True)

    return report


def register_bundle_commands(main: click.Group, connection_options: Decorator, emit: Emit) -> None:
    """Add ``export`` and ``import`` to the ``swarm`` command."""

    include_forgotten = click.option(
        "--include-forgotten", is_flag=True, help="Also carry forgotten memories."
    )

    @main.command("export")
    @click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
    @click.option(
        "--soul",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="The agent's own SOUL.md, carried over unchanged.",
    )
    @include_forgotten
    @connection_options
    @run_async
    async def export(ctx: Any, directory: Path, soul: Path | None, include_forgotten: bool) -> None:
        """Write the memories of an agent (--agent) as a portable bundle in DIRECTORY."""
        creds = Credentials.load(ctx.creds) if ctx.creds else None
        if not _agent_given() and (creds is None or creds.role != "agent"):
            raise ConfigError("give --agent: whose memories to export")
        # With credentials you read as their holder (admin: everything); without, as
        # the agent itself, which sees its private memories too.
        reader = creds.agent if creds is not None else ctx.agent
        try:
            soul_text = soul.read_bytes() if soul is not None else None
        except OSError as err:
            raise ConfigError(f"{soul}: cannot read: {err.strerror or err}") from None
        client = await SwarmClient.connect(
            ctx.url, swarm=ctx.name, agent=reader, instance=ctx.instance, credentials=creds
        )
        async with client:
            bundle, files = await export_bundle(
                client,
                directory,
                ctx.agent,
                swarm=ctx.name,
                requester=client.requester,
                include_forgotten=include_forgotten,
                soul=soul_text,
            )
        forgotten = sum(m.forgotten for m in bundle.memories)
        data = {
            "directory": str(directory),
            "agent": bundle.agent,
            "memories": len(bundle.memories),
            "forgotten": forgotten,
            "topics": sum(1 for f in files if f.parent.name == "memory"),
            "soul": "given" if soul is not None else "written",
            "files": [f.as_posix() for f in files],
        }

        def human(d: dict[str, Any]) -> str:
            also = f" ({d['forgotten']} forgotten)" if d["forgotten"] else ""
            return (
                f"exported {_plural(d['memories'], 'memory', 'memories')}{also} of "
                f"{d['agent']} in {_plural(d['topics'], 'topic')} to {d['directory']}"
            )

        emit(ctx, data, human)

    @main.command("import")
    @click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option(
        "--include-forgotten",
        is_flag=True,
        help="Also import the bundle's forgotten memories, then forget them.",
    )
    @click.option("--dry-run", is_flag=True, help="List what would be written; write nothing.")
    @connection_options
    @run_async
    async def import_(ctx: Any, directory: Path, include_forgotten: bool, dry_run: bool) -> None:
        """Write a bundle's memories into the swarm as this agent's (default: the bundle's)."""
        bundle = read_bundle(directory)
        if not ctx.creds and not _agent_given():
            ctx.agent = bundle.agent
        if dry_run:
            items, left_out = import_plan(bundle, include_forgotten=include_forgotten)
            planned = {
                "dry_run": True,
                "agent": ctx.agent,
                "memories": [item.as_dict() for item in items],
                "left_out": left_out,
            }

            def listing(d: dict[str, Any]) -> str:
                lines = [
                    f"{m['id']}  <- {m['source_id']}  [{m['kind']}]"
                    f"{'  (private)' if m['private'] else ''}"
                    f"{'  (then forgotten)' if m['forget'] else ''}  {m['content'][:60]!r}"
                    for m in d["memories"]
                ]
                lines.append(
                    f"would write {_plural(len(d['memories']), 'memory', 'memories')} "
                    f"as {d['agent']}"
                    + (f"; {d['left_out']} forgotten left out" if d["left_out"] else "")
                )
                return "\n".join(lines)

            emit(ctx, planned, listing)
            return
        async with await ctx.client() as client:
            report = await import_bundle(
                client,
                bundle,
                include_forgotten=include_forgotten,
                progress=_progress(len(bundle.memories)),
            )
        summary = report.as_dict()

        def human(d: dict[str, Any]) -> str:
            parts = [f"imported {d['imported']}", f"{d['skipped']} already there"]
            if d["pending"]:
                parts.append(f"{len(d['pending'])} waiting for approval")
            if d["left_out"]:
                parts.append(f"{d['left_out']} forgotten left out")
            lines = [f"rejected {r['id']} by {r['check']}: {r['reason']}" for r in d["rejected"]]
            lines += [f"pending {p['id']}: proposal {p['proposal']}" for p in d["pending"]]
            return "\n".join([*lines, ", ".join(parts) + f" (as {ctx.agent})"])

        emit(ctx, summary, human)
        if report.rejected:
            _fail(f"{_plural(len(report.rejected), 'memory', 'memories')} rejected (listed above)")
