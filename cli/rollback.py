"""``swarm rollback``: restore the memories as of a log sequence or a time.

A rollback is destructive, so it is a proposal: this command opens it and prints
it; a principal approves it with ``swarm approvals approve ID`` (the admin may
approve its own), and only then does the gate append the compensating changes.
An admin command, like ``swarm agents``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.agents import _options
from cli.audit import admin_request
from cli.common import run_async
from swarm.errors import ConfigError

__all__ = ["rollback"]


@click.command(name="rollback")
@click.option("--to", "to", required=True, help="A log sequence, or an ISO-8601 time.")
@click.option("--reason", required=True, help="Why (recorded in the log).")
@click.option("--memory", "memory_id", default=None, help="Only this memory.")
@click.option("--agent", "of_agent", default=None, help="Undo what this agent wrote since.")
@_options
@run_async
async def rollback(
    to: str,
    reason: str,
    memory_id: str | None,
    of_agent: str | None,
    url: str,
    name: str,
    creds: str | None,
    as_json: bool,
) -> None:
    """Restore the swarm (or --memory ID, or undo --agent A) as of --to SEQ|TIME."""
    if memory_id and of_agent:
        raise ConfigError("give --memory or --agent, not both")
    scope = "memory" if memory_id else "agent" if of_agent else "swarm"
    body = {
        "to": to,
        "scope": scope,
        "memory_id": memory_id,
        "agent": of_agent,
        "reason": reason,
    }
    row: dict[str, Any] = await admin_request(url, name, creds, "rollback", body)
    if as_json:
        click.echo(json.dumps(row))
        return
    spec = row["rollback"]
    what = {
        "swarm": "every memory",
        "memory": f"memory {spec['memory_id']}",
        "agent": f"what {spec['agent']} wrote",
    }[spec["scope"]]
    click.echo(
        f"rollback of {what} to seq {spec['to_seq']} proposed: {row['proposal']} "
        f"(expires {row['expires_at'][:19]})"
    )
    click.echo(f"  approve it with: swarm approvals approve {row['proposal']}")
