"""``swarm laws``: check law files and try laws locally, without a running swarm.

``check FILE`` validates a ``laws.yaml`` or an agent's ``SOUL.md`` and prints its
laws; ``test TEXT`` judges a made-up proposal against the default law set (or a
file's). Both are pure: no NATS, no service.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import click

from cli.common import _fail
from swarm.errors import ConfigError, SwarmError
from swarm.events import NAME_PATTERN
from swarm.laws import default_laws
from swarm.laws.base import Judgement, LawSet, TrialEvent, trial_proposal
from swarm.laws.registry import build_law_set
from swarm.laws.spec import LawSpec, load_file, specs_table

__all__ = ["laws"]

_MEMORY_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _load(path: Path) -> tuple[str, list[LawSpec], LawSet]:
    kind, specs = load_file(path)
    return kind, specs, build_law_set(specs, allow_approval=True)


@click.group(name="laws", context_settings={"help_option_names": ["-h", "--help"]})
def laws() -> None:
    """The laws: check a file or try one locally; list and history ask the swarm."""


@laws.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def check(file: Path, as_json: bool) -> None:
    """Validate a laws.yaml or a SOUL.md and print its laws."""
    try:
        kind, specs, _ = _load(file)
    except SwarmError as err:
        _fail(str(err))
        return
    rows = specs_table(specs)
    if as_json:
        click.echo(json.dumps({"file": str(file), "laws": rows}))
        return
    source = "laws.yaml" if kind == "laws" else "SOUL.md"
    click.echo(f"{file}: {len(rows)} law{'s' if len(rows) != 1 else ''} ({source}), valid")
    if rows:
        click.echo(_table(specs))


def _table(specs: list[LawSpec]) -> str:
    header = ("ID", "KIND", "ACTION", "SCOPE", "DESCRIPTION")
    cells = [header] + [
        (s.id, s.kind, s.action, s.scope.describe(), s.description or "-") for s in specs
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in cells
    )


def _verdicts(law_set: LawSet, judgement: Judgement) -> list[dict[str, Any]]:
    """One row per law, in order: pass, flag, reject, pending, or skipped after a rejection."""
    results = {r.law: r for r in judgement.results}
    pending = {p.law: p for p in judgement.pending}
    rows: list[dict[str, Any]] = []
    for law in law_set.laws:
        if law.id in results:
            r = results[law.id]
            rows.append({"id": law.id, "verdict": r.verdict, "reason": r.reason})
        elif law.id in pending:
            rows.append({"id": law.id, "verdict": "pending", "reason": pending[law.id].reason})
        else:
            rows.append({"id": law.id, "verdict": "skipped", "reason": "an earlier law rejected"})
    return rows


def _soul_agent(specs: list[LawSpec]) -> str | None:
    for spec in specs:
        if spec.scope.agents:
            return spec.scope.agents[0]
    return None


@laws.command("test")
@click.argument("text")
@click.option(
    "--agent",
    envvar="SWARM_AGENT",
    default=None,
    help="Writing agent (env SWARM_AGENT; default: a SOUL.md's agent, else cli).",
)
@click.option("--kind", default="fact", show_default=True, help="Memory kind.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--event",
    type=click.Choice(["remember", "update", "forget"]),
    default="remember",
    show_default=True,
    help="Write a new memory, rewrite one, or forget one.",
)
@click.option(
    "--owner",
    default=None,
    help="Agent that wrote the memory being updated or forgotten (default: --agent).",
)
@click.option(
    "--laws",
    "laws_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A laws.yaml or SOUL.md (default: the swarm's default laws).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def test_command(
    text: str,
    agent: str | None,
    kind: str,
    tags: tuple[str, ...],
    event: str,
    owner: str | None,
    laws_file: Path | None,
    as_json: bool,
) -> None:
    """Judge a proposed memory TEXT against the laws, locally, and print each law's verdict."""
    try:
        if laws_file is None:
            law_set, soul_agent = default_laws(), None
        else:
            file_kind, specs, law_set = _load(laws_file)
            soul_agent = _soul_agent(specs) if file_kind == "soul" else None
        writer = agent or soul_agent or "cli"
        for label, name in (("agent", writer), ("owner", owner)):
            if name is not None and not re.fullmatch(NAME_PATTERN, name):
                raise ConfigError(
                    f"--{label} {name!r}: use lower-case letters, digits, - and _ (at most 64)"
                )
        if not _MEMORY_KIND.match(kind):
            raise ConfigError(f"--kind {kind!r}: use 1-32 lower-case letters, digits, - or _")
        proposal = trial_proposal(
            text, agent=writer, kind=kind, tags=tags, event=cast(TrialEvent, event), owner=owner
        )
        judgement = law_set.judge(proposal)
    except SwarmError as err:
        _fail(str(err))
        return
    rows = _verdicts(law_set, judgement)
    if as_json:
        click.echo(json.dumps({"verdict": judgement.decision, "laws": rows}))
        return
    width = max((len(r["id"]) for r in rows), default=0)
    for r in rows:
        reason = f"  {r['reason']}" if r["reason"] else ""
        click.echo(f"{r['verdict']:<8} {r['id']:<{width}}{reason}".rstrip())
    click.echo(f"verdict: {judgement.decision} (as agent {writer})")
