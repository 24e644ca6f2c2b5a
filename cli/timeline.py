"""The time options of the read commands: ``--as-of``, ``--data``, and readable history.

``--as-of SEQ|TIME`` asks for an answer as the swarm would have given it at that
log sequence or time; ``--data DIR`` reads a data directory offline (a copy
made by ``swarm replay``) instead of asking the service. Both keep the output
shapes of the plain commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from swarm.auth import ADMIN
from swarm.client import SwarmClient
from swarm.diff import annotate, summary
from swarm.errors import ConfigError
from swarm.identity import Credentials
from swarm.timeline import AsOf, parse_as_of

if TYPE_CHECKING:
    from projections.offline import OfflineReader

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _as_of(_ctx: click.Context, param: click.Parameter, value: str | None) -> AsOf | None:
    if value is None:
        return None
    try:
        return parse_as_of(value)
    except ConfigError as err:
        raise click.BadParameter(str(err), param=param) from None


def as_of_option(fn: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        default=None,
        callback=_as_of,
        metavar="SEQ|TIME",
        help="Answer as of this log sequence or ISO-8601 time (e.g. 2026-11-17T09:00Z).",
    )(fn)


def data_option(fn: F) -> F:
    return click.option(
        "--data",
        "data_dir",
        default=None,
        type=click.Path(file_okay=False),
        help="Read this data directory offline (a `swarm replay` copy): no service needed.",
    )(fn)


def offline_requester(agent: str, creds: str | None) -> str:
    """Who reads offline: ``_admin`` with the admin's credentials, else the agent."""
    if creds is not None and Credentials.load(creds).role == "admin":
        return ADMIN
    return agent


async def read(
    ctx: Any,
    data_dir: str | None,
    online: Callable[[SwarmClient], Awaitable[T]],
    offline: Callable[[OfflineReader], T],
    *,
    after: int | None = None,
) -> T:
    """Ask the service, or (``data_dir``) read that directory offline."""
    if data_dir is None:
        async with await ctx.client() as client:
            return await online(client)
    if after is not None:
        raise ConfigError("--after waits for the service; it does not apply with --data")
    from projections.offline import OfflineReader  # noqa: PLC0415 - stores only when offline

    def run() -> T:
        requester = offline_requester(ctx.agent, ctx.creds)
        with OfflineReader(data_dir, swarm=ctx.name, requester=requester) as reader:
            return offline(reader)

    return await asyncio.to_thread(run)


def as_of_header(data: dict[str, Any]) -> str:
    return f"as of seq {data['as_of']}:\n" if data.get("as_of") is not None else ""


def history_text(data: dict[str, Any]) -> str:
    """Each version: seq, time, author, event, then what it changed."""
    rows = [f"history of {data['id']}:"]
    versions = data["versions"]
    if not all("changes" in v for v in versions):  # a service from before diffs
        versions = annotate(versions)
    for v in versions:
        kind = str(v["type"]).removeprefix("memory.")
        rows.append(
            f"  seq {v['seq']:>6}  {str(v['at'])[:19].replace('T', ' ')}  "
            f"{v.get('author') or v['agent'] + '@' + v['instance']:<20} {kind}"
        )
        rows += [f"      {line}" for line in summary(v["changes"], v["state"])]
    return "\n".join(rows)
