"""``swarm audit``: who did what, when, under which laws; ``--verify`` proves the log whole.

``--verify`` walks the log's hash chain (see :mod:`swarm.audit`) and checks every
signed event against the keys its agent has had; it names the first sequence where
an entry was altered, removed or reordered and exits 1. With ``--data DIR`` both
read a copy offline (a data directory or a replay: its ``event_records``), without
the signatures (the registry lives on the server).

An admin command, like ``swarm agents``: it connects as the admin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
import nats.errors

from cli.agents import _options, _registry
from cli.common import run_async
from projections.duckdb_store import DuckStore
from projections.offline import OfflineReader
from swarm.audit import AuditReport, verify
from swarm.auth import ADMIN
from swarm.errors import ConnectionFailed, NotFound, SwarmError
from swarm.timeline import since_bounds

__all__ = ["admin_request", "audit"]

PAGE = 10_000


def _records(store: DuckStore) -> Iterator[tuple[int, bytes]]:
    after = 0
    while page := store.records_since(after, PAGE):
        yield from page
        after = page[-1][0]


async def _verify_live(url: str, name: str, creds: str | None) -> AuditReport:
    log = await _registry(url, name, creds)
    try:
        keys = await log.agent_keys()
        entries: list[tuple[int, bytes]] = []
        async for batch in log.read(batch=2000):
            entries.extend((m.seq, m.data) for m in batch)
    finally:
        await log.nc.close()
    return verify(entries, keys=keys)


async def admin_request(
    url: str, name: str, creds: str | None, op: str, body: dict[str, Any]
) -> Any:
    """One API request as the admin (``creds``, else the default admin file, else open)."""
    log = await _registry(url, name, creds)
    try:
        reply = await log.nc.request(
            log.subjects.api(op, ADMIN), json.dumps(body).encode(), timeout=30
        )
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        raise ConnectionFailed(
            f"no Swarm Memory service answers for swarm {name!r}: start one with `swarm up`"
        ) from None
    finally:
        await log.nc.close()
    answer = json.loads(reply.data)
    if not answer.get("ok"):
        error = answer.get("error") or {}
        message = error.get("message", f"the {op} request failed")
        raise NotFound(message) if error.get("type") == "NotFound" else SwarmError(message)
    return answer["result"]


def _report_text(d: dict[str, Any]) -> str:
    span = f"seq {d['first_seq']}..{d['last_seq']}" if d["checked"] else "an empty log"
    signatures = (
        f"{d['signed']} signed events verified"
        if d.get("signatures_checked", True)
        else f"{d['signed']} signed events (signatures not checked offline)"
    )
    if d["ok"]:
        return (
            f"log intact: {d['checked']} entries ({span}), hash chain unbroken, {signatures}, "
            f"{d['unsigned']} unsigned (open mode); head {str(d['head'])[:16]}…"
        )
    lines = [f"log NOT intact: first bad seq {d['first_bad_seq']}: {d['problem']}"]
    lines += [f"  seq {f['seq']}: {f['problem']}" for f in d["findings"][1:20]]
    return "\n".join(lines)


def _event_line(r: dict[str, Any]) -> str:
    who = f"{r['agent'] or '-'}@{r['instance'] or '-'}"
    flags = ",".join(f["law"] for f in r.get("flags") or [])
    return (
        f"{r['seq']:>7}  {str(r['accepted_at'])[:19]}  {who:<24} {r['type']:<18} "
        f"{r['memory_id'] or '':<26} laws {r['law_set'] or '-'}"
        + (f"  flagged {flags}" if flags else "")
    )


@click.command(name="audit")
@click.option("--verify", "check", is_flag=True, help="Verify the hash chain and signatures.")
@click.option("--agent", "of_agent", default=None, help="Only this agent's events.")
@click.option("--since", default=None, help="After this log sequence, or from this time.")
@click.option("--limit", default=1000, show_default=True, help="At most this many events.")
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Read a copy offline (a data directory or a replay) instead of the service.",
)
@_options
@run_async
async def audit(
    check: bool,
    of_agent: str | None,
    since: str | None,
    limit: int,
    data_dir: str | None,
    url: str,
    name: str,
    creds: str | None,
    as_json: bool,
) -> None:
    """Who did what, when, under which laws (--verify: prove the log is whole).

    An admin command: it reads as the admin (--creds, else .swarm/admin.creds.json).
    """

    def emit(data: Any, human: Callable[[Any], str]) -> None:
        click.echo(json.dumps(data, default=str) if as_json else human(data))

    if check:
        if data_dir is not None:
            with OfflineReader(data_dir, swarm=name, requester=ADMIN) as copy:
                report = verify(_records(copy.store))
            data = {**report.as_dict(), "signatures_checked": False}
        else:
            data = {**(await _verify_live(url, name, creds)).as_dict(), "signatures_checked": True}
        emit(data, _report_text)
        if not data["ok"]:
            sys.exit(1)
        return
    if data_dir is not None:
        since_seq, since_time = since_bounds(since)
        with OfflineReader(data_dir, swarm=name, requester=ADMIN) as copy:
            rows = copy.store.audit_rows(
                agent=of_agent, since_seq=since_seq, since_time=since_time, limit=limit
            )
    else:
        body = {"agent": of_agent, "since": since or "0", "limit": limit}
        rows = (await admin_request(url, name, creds, "audit", body))["events"]
    emit({"events": rows}, lambda d: "\n".join(_event_line(r) for r in d["events"]) or "no events")
