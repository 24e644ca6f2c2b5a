"""`swarm agents`: register agents (public keys), list them, revoke them.

These are the operator's commands: once the swarm has agents they need the admin
credentials (``--creds`` / ``SWARM_CREDS``, else ``.swarm/admin.creds.json`` when
present). With a NATS server managed by `swarm up`, ``add`` and ``revoke`` return
once the server enforces the change.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from cli.common import DEFAULT_URL, run_async
from swarm.auth import authorization, operator_credentials
from swarm.errors import ConfigError, ConnectionFailed, NotFound, Timeout
from swarm.events import is_valid_name, utcnow
from swarm.identity import AgentEntry, Credentials
from swarm.jetstream import JetStreamLog, auth_refused, connect
from swarm.subjects import Subjects

#: Where `swarm up` writes the admin credentials with the default data directory.
DEFAULT_ADMIN_CREDS = Path(".swarm") / "admin.creds.json"
#: How long add/revoke wait for `swarm up` to put a registry change in force.
IN_FORCE_TIMEOUT = 15.0


def _options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)
    fn = click.option(
        "--creds",
        envvar="SWARM_CREDS",
        default=None,
        type=click.Path(dir_okay=False),
        help="Admin credentials (env SWARM_CREDS; default: .swarm/admin.creds.json if present).",
    )(fn)
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


def _admin_credentials(path: str | Path) -> Credentials:
    loaded = Credentials.load(path)
    if loaded.role == "agent":
        raise ConfigError(
            f"{path} holds agent {loaded.agent!r}'s credentials: the registry needs the "
            "admin credentials (admin.creds.json in the data directory of `swarm up`)"
        )
    return loaded


async def _registry(url: str, name: str, creds: str | None) -> JetStreamLog:
    """The registry, connected as the admin (``creds``, else the default file if
    present and accepted, else anonymously: an open swarm needs no credentials)."""
    if creds is not None:
        nc = await connect(url, name="swarm-agents", credentials=_admin_credentials(creds))
    elif DEFAULT_ADMIN_CREDS.is_file():
        try:
            admin = _admin_credentials(DEFAULT_ADMIN_CREDS)
            nc = await connect(url, name="swarm-agents", credentials=admin)
        except ConnectionFailed:  # another server's admin: this one may be open
            nc = await connect(url, name="swarm-agents")
    else:
        nc = await connect(url, name="swarm-agents")
    return JetStreamLog(nc, Subjects(name))


async def _in_force(log: JetStreamLog, revision: int) -> str:
    """Wait until `swarm up` has applied the registry at ``revision`` to its server.

    Returns a note for the operator ("" when nothing needs saying).
    """
    deadline = asyncio.get_running_loop().time() + IN_FORCE_TIMEOUT
    while True:
        if log.nc.is_closed or (not log.nc.is_connected and auth_refused(log.nc.last_error)):
            # Connected anonymously to an open swarm, cut when its first agent was
            # registered: the change is in force, and so is auth.
            return (
                "this swarm now requires credentials: admin commands use the admin "
                "credentials (--creds, or .swarm/admin.creds.json)"
            )
        try:
            applied = await log.auth_applied()
        except ConnectionFailed:
            applied = -1  # cut mid-read: the next round says why
        if applied is None:
            return (
                "this NATS server's users are not managed by `swarm up`: update them "
                "(`swarm agents nats-config`) and reload nats-server"
            )
        if applied >= revision:
            return ""
        if asyncio.get_running_loop().time() > deadline:
            raise Timeout(
                f"the registry change is saved, but the `swarm up` that manages this NATS "
                f"server did not put it in force within {IN_FORCE_TIMEOUT:.0f}s: is it running? "
                "(its log says why)"
            )
        await asyncio.sleep(0.05)


async def _close(log: JetStreamLog) -> None:
    if not log.nc.is_closed:
        await log.nc.close()


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
    agent: str,
    out: str | None,
    roles: tuple[str, ...],
    url: str,
    name: str,
    creds: str | None,
    as_json: bool,
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
    log = await _registry(url, name, creds)
    try:
        current = await log.get_agent(agent)
        if current is not None and current.revoked_at is None:
            raise ConfigError(f"agent {agent!r} is already registered (revoke it first)")
        new = Credentials.generate(name, agent)
        entry = AgentEntry(agent=agent, public_key=new.public_key, roles=roles)
        revision = await log.put_agent(entry)
        new.save(target)
        note = await _in_force(log, revision)
    finally:
        await _close(log)
    data = {**_row(entry), "credentials": str(target.resolve())}
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(f"registered {agent}; credentials written to {target} (keep it secret)")
        click.echo(f"  its instances use: --creds {target}   (or SWARM_CREDS={target})")
    if note:
        click.echo(f"note: {note}", err=True)


@agents.command("list")
@_options
@run_async
async def list_agents(url: str, name: str, creds: str | None, as_json: bool) -> None:
    """The registered agents."""
    log = await _registry(url, name, creds)
    try:
        entries = await log.list_agents()
    finally:
        await _close(log)
    rows = [_row(e) for e in entries]
    if as_json:
        click.echo(json.dumps({"agents": rows}))
    elif not rows:
        click.echo("no agents registered: the swarm is open (anyone may connect and write)")
    else:
        for r in rows:
            state = f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "active"
            click.echo(f"{r['agent']:<20} {state:<28} key {r['public_key'][:16]}…")


@agents.command("revoke")
@click.argument("agent")
@_options
@run_async
async def revoke(agent: str, url: str, name: str, creds: str | None, as_json: bool) -> None:
    """Stop AGENT at once: the server cuts its connections, the gate refuses its events."""
    log = await _registry(url, name, creds)
    note = ""
    try:
        entry = await log.get_agent(agent)
        if entry is None:
            raise NotFound(f"agent {agent!r} is not registered")
        if entry.revoked_at is None:
            entry = entry.model_copy(update={"revoked_at": utcnow()})
            note = await _in_force(log, await log.put_agent(entry))
    finally:
        await _close(log)
    if as_json:
        click.echo(json.dumps(_row(entry)))
    else:
        click.echo(f"revoked {agent} at {entry.revoked_at.isoformat() if entry.revoked_at else ''}")
    if note:
        click.echo(f"note: {note}", err=True)


@agents.command("nats-config")
@click.option(
    "--data",
    "data_dir",
    default=".swarm",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the service's and admin's credentials are (made if missing).",
)
@_options
@run_async
async def nats_config(data_dir: str, url: str, name: str, creds: str | None, as_json: bool) -> None:
    """Print the `authorization` block for a NATS server that `swarm up` does not manage."""
    operators = operator_credentials(data_dir, name)
    log = await _registry(url, name, creds or str(Path(data_dir) / "admin.creds.json"))
    try:
        entries = await log.list_agents()
    finally:
        await _close(log)
    block = authorization(name, entries, operators=operators)
    if as_json:
        click.echo(json.dumps({"authorization": block}))
    else:
        click.echo(f"# swarm {name}: users for nats-server (include it, then reload the server)")
        click.echo(block, nl=False)
