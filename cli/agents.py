"""`swarm agents`: register agents (public keys), list them, revoke them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.common import DEFAULT_URL, run_async
from swarm.errors import ConfigError, NotFound
from swarm.events import is_valid_name, utcnow
from swarm.identity import AgentEntry, Credentials
from swarm.jetstream import JetStreamLog, connect
from swarm.subjects import Subjects


def _options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)
    fn = click.option(
        "--name",
        envvar="SWARM_NAME",
        default="default",
        show_default=True,
        help="Swarm name (env SWARM_NAME).",
    )(fn)
    return click.option(
        "--url",
        envvar="SWARM_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="NATS server of the swarm (env SWARM_URL).",
    )(fn)


async def _registry(url: str, name: str) -> JetStreamLog:
    return JetStreamLog(await connect(url, name="swarm-agents"), Subjects(name))


def _row(entry: AgentEntry) -> dict[str, Any]:
    return {
        "agent": entry.agent,
        "public_key": entry.public_key,
        "roles": list(entry.roles),
        "created_at": entry.created_at.isoformat(),
        "revoked_at": entry.revoked_at.isoformat() if entry.revoked_at else None,
    }


@click.group()
def agents() -> None:
    """The agent registry: who may write, with which key."""


@agents.command("add")
@click.argument("agent")
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where to write the credentials file (default: ./AGENT.creds.json).",
)
@click.option("--role", "roles", multiple=True, help="A role (repeatable).")
@_options
@run_async
async def add(
    agent: str, out: str | None, roles: tuple[str, ...], url: str, name: str, as_json: bool
) -> None:
    """Register AGENT with a new key pair and write its credentials file."""
    if not is_valid_name(agent):
        raise ConfigError(
            f"invalid agent name {agent!r}: use lower-case letters, digits, '-' or '_'"
        )
    target = Path(out or f"{agent}.creds.json")
    if target.exists():
        raise ConfigError(
            f"{target} exists: choose another --out (an existing key is not replaced)"
        )
    log = await _registry(url, name)
    try:
        current = await log.get_agent(agent)
        if current is not None and current.revoked_at is None:
            raise ConfigError(f"agent {agent!r} is already registered (revoke it first)")
        creds = Credentials.generate(name, agent)
        entry = AgentEntry(agent=agent, public_key=creds.public_key, roles=roles)
        await log.put_agent(entry)
    finally:
        await log.nc.close()
    creds.save(target)
    data = {**_row(entry), "credentials": str(target.resolve())}
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(f"registered {agent}; credentials written to {target} (keep it secret)")
        click.echo(f"  its instances sign with: --creds {target}   (or SWARM_CREDS={target})")


@agents.command("list")
@_options
@run_async
async def list_agents(url: str, name: str, as_json: bool) -> None:
    """The registered agents."""
    log = await _registry(url, name)
    try:
        entries = await log.list_agents()
    finally:
        await log.nc.close()
    rows = [_row(e) for e in entries]
    if as_json:
        click.echo(json.dumps({"agents": rows}))
    elif not rows:
        click.echo("no agents registered: the swarm accepts unsigned writes (open mode)")
    else:
        for r in rows:
            state = f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "active"
            click.echo(f"{r['agent']:<20} {state:<28} key {r['public_key'][:16]}…")


@agents.command("revoke")
@click.argument("agent")
@_options
@run_async
async def revoke(agent: str, url: str, name: str, as_json: bool) -> None:
    """Stop AGENT at once: the gate refuses its next event."""
    log = await _registry(url, name)
    try:
        entry = await log.get_agent(agent)
        if entry is None:
            raise NotFound(f"agent {agent!r} is not registered")
        if entry.revoked_at is None:
            entry = entry.model_copy(update={"revoked_at": utcnow()})
            await log.put_agent(entry)
    finally:
        await log.nc.close()
    if as_json:
        click.echo(json.dumps(_row(entry)))
    else:
        click.echo(f"revoked {agent} at {entry.revoked_at.isoformat() if entry.revoked_at else ''}")
