"""The ``swarm`` command: thin wrappers over the SDK.

Every command parses its options, calls the library, and renders the result —
a readable line or table for people, one JSON document with ``--json``.
Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.common import DEFAULT_URL, _fail, duration, run_async
from cli.timeline import as_of_header, as_of_option, data_option, history_text, read
from swarm import telemetry
from swarm.client import SwarmClient
from swarm.errors import SwarmError
from swarm.events import Receipt
from swarm.identity import Credentials
from swarm.timeline import AsOf


def _default_instance() -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname().lower())
    return (name.strip("-_") or "local")[:64]


class Ctx:
    def __init__(
        self, url: str, name: str, agent: str, instance: str, as_json: bool, creds: str | None
    ) -> None:
        self.url, self.name, self.agent, self.instance = url, name, agent, instance
        self.as_json, self.creds = as_json, creds

    async def client(self) -> SwarmClient:
        return await SwarmClient.connect(
            self.url,
            swarm=self.name,
            agent=self.agent,
            instance=self.instance,
            credentials=self.creds,
        )


def _creds_agent(path: str) -> str:
    try:
        return Credentials.load(path).agent
    except SwarmError as err:
        _fail(str(err))
        raise  # unreachable: _fail exits


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--url",
            envvar="SWARM_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="NATS server of the swarm (env SWARM_URL).",
        ),
        click.option(
            "--name",
            envvar="SWARM_NAME",
            default="default",
            show_default=True,
            help="Swarm name (env SWARM_NAME).",
        ),
        click.option(
            "--agent",
            envvar="SWARM_AGENT",
            default=None,
            help="Agent identity (env SWARM_AGENT; default: the credentials' agent, else cli).",
        ),
        click.option(
            "--instance",
            envvar="SWARM_INSTANCE",
            default=None,
            help="Instance of the agent (env SWARM_INSTANCE; default: host name).",
        ),
        click.option(
            "--creds",
            envvar="SWARM_CREDS",
            default=None,
            type=click.Path(dir_okay=False),
            help="Credentials file: logs in and signs writes (env SWARM_CREDS).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    ]
    for option in reversed(options):
        fn = option(fn)

    @functools.wraps(fn)
    def wrapper(
        url: str,
        name: str,
        agent: str | None,
        instance: str | None,
        creds: str | None,
        as_json: bool,
        **kwargs: Any,
    ) -> Any:
        if agent is None:  # the credentials say who; admin ones read as _admin
            agent = _creds_agent(creds) if creds else "cli"
        ctx = Ctx(url, name, agent, instance or _default_instance(), as_json, creds)
        return fn(ctx, **kwargs)

    return wrapper


def emit(ctx: Ctx, data: Any, human: Callable[[Any], str]) -> None:
    if ctx.as_json:
        click.echo(json.dumps(data, default=str))
    else:
        click.echo(human(data))


def _receipt(ctx: Ctx, receipt: Receipt, verb: str) -> None:
    if receipt.status == "pending":
        held = {
            "id": receipt.id,
            "status": "pending",
            "proposal": receipt.proposal,
            "seq": receipt.seq,
            "event_id": receipt.event_id,
            "laws": [f.model_dump() for f in receipt.flags],
        }
        laws = ", ".join(f.law for f in receipt.flags)
        emit(
            ctx,
            held,
            lambda d: (
                f"pending approval: proposal {d['proposal']} ({laws}); "
                f"`swarm approvals` lists it, an approver decides"
            ),
        )
        return
    data = {
        "id": receipt.id,
        "status": "accepted",
        "seq": receipt.seq,
        "event_id": receipt.event_id,
        "duplicate": receipt.duplicate,
        "flags": [f.model_dump() for f in receipt.flags],
    }
    emit(ctx, data, lambda d: f"{verb} {d['id']} (log seq {d['seq']})")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swarm-memory")
def main() -> None:
    """Swarm Memory: one shared, trustworthy memory for a swarm of AI agents."""
    telemetry.configure_logging("warning")
    telemetry.configure()


# -- the service ---------------------------------------------------------------------------


@main.command()
@click.option(
    "--data",
    "data_dir",
    default=".swarm",
    show_default=True,
    type=click.Path(),
    help="Data directory (NATS store, DuckDB, LanceDB).",
)
@click.option("--port", default=4222, show_default=True, help="Port of the embedded nats-server.")
@click.option(
    "--nats", "nats_url", default=None, help="Use this NATS server instead of embedding one."
)
@click.option(
    "--sync",
    "sync_interval",
    default="always",
    show_default=True,
    help="JetStream sync_interval of the embedded server: 'always' or a duration like 1s.",
)
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    type=click.IntRange(1, 5),
    help="Stream replicas (3 on a JetStream cluster); never lowered on restart.",
)
@click.option(
    "--laws",
    "laws_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="A laws.yaml or SOUL.md: it becomes the swarm's law, recorded in the log.",
)
@click.option(
    "--approval-ttl",
    "approval_ttl",
    default="7d",
    show_default=True,
    callback=duration,
    help="How long a write held for approval waits before it expires (90s, 12h, 7d).",
)
@click.option(
    "--name", envvar="SWARM_NAME", default="default", show_default=True, help="Swarm name."
)
@click.option(
    "--creds",
    "creds_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="With --nats: the service's credentials on that server (its users are yours).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print where everything is as JSON, then run."
)
def up(
    data_dir: str,
    port: int,
    nats_url: str | None,
    sync_interval: str,
    replicas: int,
    laws_file: str | None,
    approval_ttl: float,
    name: str,
    creds_file: str | None,
    as_json: bool,
) -> None:
    """Start the service (and an embedded nats-server) until Ctrl-C."""
    from cli.stack import run_stack  # noqa: PLC0415 - heavy imports only for `up`

    telemetry.configure_logging("info")

    try:
        asyncio.run(
            run_stack(
                Path(data_dir),
                port=port,
                nats_url=nats_url,
                sync_interval=sync_interval,
                swarm=name,
                as_json=as_json,
                install_signals=True,
                replicas=replicas,
                laws_file=laws_file,
                approval_ttl=approval_ttl,
                creds_file=creds_file,
            )
        )
    except SwarmError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        pass


@main.command(hidden=True)
@click.option("--role", type=click.Choice(["all", "gate", "projector"]), default="all")
@click.option("--nats", "nats_url", required=True, help="NATS server to use.")
@click.option("--name", envvar="SWARM_NAME", default="default", help="Swarm name.")
@click.option("--data", "data_dir", default=".swarm", type=click.Path())
@click.option("--replicas", default=1, type=click.IntRange(1, 5))
@click.option("--parent", type=int, default=None, help="Stop when this process is gone.")
@click.option("--laws", "laws_file", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--approval-ttl", "approval_ttl", default="7d", callback=duration)
@click.option(
    "--creds",
    "creds_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="The service's NATS credentials.",
)
@click.option("--json", "as_json", is_flag=True)
def serve(
    role: str,
    nats_url: str,
    name: str,
    data_dir: str,
    replicas: int,
    parent: int | None,
    laws_file: str | None,
    approval_ttl: float,
    creds_file: str | None,
    as_json: bool,
) -> None:
    """Run one side of the service (used by `swarm up`)."""
    from cli.stack import run_role  # noqa: PLC0415

    telemetry.configure_logging("info")
    try:
        asyncio.run(
            run_role(
                Path(data_dir),
                url=nats_url,
                swarm=name,
                role=role,  # type: ignore[arg-type]
                replicas=replicas,
                parent=parent,
                as_json=as_json,
                laws_file=laws_file,
                approval_ttl=approval_ttl,
                creds_file=creds_file,
            )
        )
    except SwarmError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temp directory.")
def demo(keep: bool) -> None:
    """Run three agent instances on a private stack and narrate what happens."""
    from cli.demo import run_demo  # noqa: PLC0415

    try:
        asyncio.run(run_demo(keep=keep))
    except SwarmError as err:
        _fail(str(err))


# -- writes --------------------------------------------------------------------------------


@main.command()
@click.argument("text")
@click.option("--kind", default="fact", show_default=True, help="fact, episode, procedure, …")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--importance", type=float, default=0.5, show_default=True, help="0..1")
@click.option("--private", is_flag=True, help="Only this agent may read it.")
@click.option(
    "--redact", is_flag=True, help="Replace private data with [REDACTED:kind] before writing."
)
@click.option(
    "--about",
    "about",
    multiple=True,
    metavar="NAME",
    help="A person (data subject) it is about, for `forget --about NAME --erase` "
    "(repeatable; the name stays in the keystore, not the log).",
)
@connection_options
@run_async
async def remember(
    ctx: Ctx,
    text: str,
    kind: str,
    tags: tuple[str, ...],
    importance: float,
    private: bool,
    redact: bool,
    about: tuple[str, ...],
) -> None:
    """Store a new memory; prints its id and log sequence."""
    async with await ctx.client() as client:
        receipt = await client.remember(
            text,
            kind=kind,
            tags=tags,
            importance=importance,
            private=private,
            redact=redact,
            about=about,
        )
    _receipt(ctx, receipt, "remembered")


@main.command()
@click.argument("memory_id")
@click.option("--text", default=None, help="Replace the content.")
@click.option("--tag", "tags", multiple=True, help="Add a tag (repeatable).")
@click.option("--untag", "untags", multiple=True, help="Remove a tag (repeatable).")
@click.option("--importance", type=float, default=None, help="0..1")
@connection_options
@run_async
async def update(
    ctx: Ctx,
    memory_id: str,
    text: str | None,
    tags: tuple[str, ...],
    untags: tuple[str, ...],
    importance: float | None,
) -> None:
    """Change a memory's content, tags or importance."""
    async with await ctx.client() as client:
        receipt = await client.update(
            memory_id, content=text, add_tags=tags, remove_tags=untags, importance=importance
        )
    _receipt(ctx, receipt, "updated")


@main.command()
@click.argument("memory_id")
@connection_options
@run_async
async def reinforce(ctx: Ctx, memory_id: str) -> None:
    """Count one more recall of a memory."""
    async with await ctx.client() as client:
        receipt = await client.reinforce(memory_id)
    _receipt(ctx, receipt, "reinforced")


@main.command()
@click.argument("memory_ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--reason", default=None, help="Why (kept in history, or in the erasure's tombstone)."
)
@click.option(
    "--erase",
    is_flag=True,
    help="Erase for good: destroy the content's key (crypto-shredding), so no log entry, "
    "projection, snapshot or replay can show it again. The admin's to do once agents "
    "are registered; --reason required.",
)
@click.option(
    "--about",
    metavar="NAME",
    default=None,
    help="With --erase: everything about this data subject (memories filed under the name "
    "with `remember --about`, and those whose text names it).",
)
@click.option(
    "--no-mentions",
    is_flag=True,
    help="With --about: only memories filed under the name, not those whose text names it.",
)
@click.option("--dry-run", is_flag=True, help="With --erase: list what would go; erase nothing.")
@connection_options
@run_async
async def forget(
    ctx: Ctx,
    memory_ids: tuple[str, ...],
    reason: str | None,
    erase: bool,
    about: str | None,
    no_mentions: bool,
    dry_run: bool,
) -> None:
    """Retire a memory (a tombstone; history keeps it), or with --erase destroy its content.

    \b
      swarm forget ID --reason "superseded"
      swarm forget ID --erase --reason "GDPR request 2026-114"
      swarm forget --about "Dana Whitfield" --erase --dry-run
    """
    if not erase:
        if about or dry_run or no_mentions or len(memory_ids) != 1:
            raise click.UsageError(
                "forget takes one memory ID; --about, --dry-run and --no-mentions need --erase"
            )
        async with await ctx.client() as client:
            receipt = await client.forget(memory_ids[0], reason=reason)
        _receipt(ctx, receipt, "forgot")
        return
    if not memory_ids and not about:
        raise click.UsageError("--erase needs memory IDs or --about NAME")
    if not reason and not dry_run:
        raise click.UsageError("--erase needs --reason (kept in the erasure's tombstone)")
    async with await ctx.client() as client:
        result = await client.erase(
            memory_ids,
            reason=reason or "",
            about=about,
            mentions=not no_mentions,
            dry_run=dry_run,
        )
    emit(ctx, result, functools.partial(_erasure_text, dry_run=dry_run))


def _erasure_text(result: dict[str, Any], *, dry_run: bool) -> str:
    plan = {m["id"]: m for m in result["plan"]["memories"]}
    shown = list(plan) if dry_run else result["erased"]
    head = (
        f"would erase {len(shown)} memories"
        if dry_run
        else f"erased {len(shown)} memories (tombstone at seq {result['seq']})"
        if shown
        else "nothing to erase"
    )
    lines = [head]
    for mid in shown:
        m = plan.get(mid, {})
        note = " (already erased)" if m.get("erased") else ""
        lines.append(f"  {mid}  {m.get('why', 'named')}  by {m.get('agent')}{note}")
    if result.get("already") and not dry_run:
        lines.append(f"  already erased: {', '.join(result['already'])}")
    return "\n".join(lines)


# -- reads ---------------------------------------------------------------------------------


def _memory_text(m: dict[str, Any]) -> str:
    tags = ", ".join(m.get("tags") or []) or "-"
    lines = [
        f"{m['id']}  [{m['kind']}]{'  (private)' if m.get('private') else ''}"
        f"{'  (forgotten)' if m.get('forgotten') else ''}{'  (erased)' if m.get('erased') else ''}",
        f"  {'[erased]' if m.get('erased') else m['content']}",
        f"  tags: {tags}   importance: {m['importance']}   recalled: {m['recall_count']}",
        f"  by {m['agent']}@{m['instance']}   last change: seq {m['seq']} by {m.get('updated_by')}",
    ]
    return "\n".join(lines)


@main.command()
@click.argument("memory_id")
@click.option("--after", type=int, default=None, help="Wait until the projection has this seq.")
@as_of_option
@data_option
@connection_options
@run_async
async def get(
    ctx: Ctx, memory_id: str, after: int | None, as_of: AsOf | None, data_dir: str | None
) -> None:
    """Show one memory's current state (or as of a past seq or time)."""
    memory = await read(
        ctx,
        data_dir,
        lambda client: client.get(memory_id, after=after, as_of=as_of),
        lambda reader: reader.get(memory_id, as_of=as_of),
        after=after,
    )
    emit(ctx, memory, lambda m: as_of_header(m) + _memory_text(m))


@main.command()
@click.argument("memory_id")
@click.option("--after", type=int, default=None, help="Wait until the projection has this seq.")
@data_option
@connection_options
@run_async
async def history(ctx: Ctx, memory_id: str, after: int | None, data_dir: str | None) -> None:
    """Every version of a memory: who changed it, when, and what changed."""
    data = await read(
        ctx,
        data_dir,
        lambda client: client.history(memory_id, after=after),
        lambda reader: reader.history(memory_id),
        after=after,
    )
    emit(ctx, data, history_text)


@main.command()
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, help="How many results.")
@click.option("--after", type=int, default=None, help="Wait until the projection has this seq.")
@click.option("--by", "by_agent", default=None, help="Only memories written by this agent.")
@click.option("--kind", default=None, help="Only this kind.")
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag (repeatable).")
@as_of_option
@data_option
@connection_options
@run_async
async def recall(
    ctx: Ctx,
    query: str,
    k: int,
    after: int | None,
    by_agent: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    as_of: AsOf | None,
    data_dir: str | None,
) -> None:
    """Hybrid (semantic + full-text) search over the memories you may see."""
    results = await read(
        ctx,
        data_dir,
        lambda client: client.recall(
            query, k=k, after=after, agent=by_agent, kind=kind, tags=tags, as_of=as_of
        ),
        lambda reader: reader.recall(query, k=k, agent=by_agent, kind=kind, tags=tags, as_of=as_of),
        after=after,
    )

    def human(d: dict[str, Any]) -> str:
        if not d["results"]:
            return "no memories found"
        return "\n".join(
            f"{r['score']:.3f}  {r['id']}  {r['agent']:<10} {r['content'][:80]}"
            for r in d["results"]
        )

    emit(ctx, {"results": results}, human)


@main.command()
@click.option("--since", type=int, default=1, show_default=True, help="First log sequence.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@connection_options
@run_async
async def tail(ctx: Ctx, since: int, follow: bool) -> None:
    """Print accepted events in log order (one JSON object per line with --json)."""
    async with await ctx.client() as client:
        async for event in client.tail(since=since, follow=follow):
            if ctx.as_json:
                click.echo(json.dumps(event))
            else:
                click.echo(
                    f"{event['seq']:>7}  {event['accepted_at'][:19]}  {event['agent']}@"
                    f"{event['instance']:<12} {event['type']:<18} {event['memory_id']}"
                )


@main.command()
@click.option("--since", type=int, default=0, show_default=True, help="After this REJECTED seq.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@connection_options
@run_async
async def rejections(ctx: Ctx, since: int, limit: int) -> None:
    """Refused writes, for audit: who, which check or law, why (never the content)."""
    async with await ctx.client() as client:
        rows = await client.rejections(since=since, limit=limit)

    def human(d: dict[str, Any]) -> str:
        if not d["rejections"]:
            return "no rejections"
        return "\n".join(
            f"{r['seq']:>6}  {str(r['at'])[:19]}  {r['agent'] or '?'}@{r['instance'] or '?':<10} "
            f"{r['check']:<18} {r['reason']}"
            for r in d["rejections"]
        )

    emit(ctx, {"rejections": rows}, human)


@main.command()
@data_option
@connection_options
@run_async
async def status(ctx: Ctx, data_dir: str | None) -> None:
    """Log and projection positions, lag, counts."""
    data = await read(ctx, data_dir, lambda client: client.status(), lambda r: r.status())

    def human(d: dict[str, Any]) -> str:
        def text(v: Any) -> str:  # an offline copy's replay manifest is a dict
            return ", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else str(v)

        return "\n".join(f"{k:<18} {text(v)}" for k, v in d.items() if v is not None)

    emit(ctx, data, human)


def _register_groups() -> None:
    from cli.agents import agents  # noqa: PLC0415 - groups live in their own modules
    from cli.approvals import make_approvals, register_law_reads  # noqa: PLC0415
    from cli.audit import audit  # noqa: PLC0415
    from cli.bundle import register_bundle_commands  # noqa: PLC0415
    from cli.cluster import cluster  # noqa: PLC0415
    from cli.laws import laws  # noqa: PLC0415
    from cli.replay import replay  # noqa: PLC0415
    from cli.rollback import rollback  # noqa: PLC0415
    from cli.top import make_top  # noqa: PLC0415

    register_law_reads(laws, connection_options, emit)
    register_bundle_commands(main, connection_options, emit)
    main.add_command(agents)
    main.add_command(make_approvals(connection_options, emit))
    main.add_command(audit)
    main.add_command(cluster)
    main.add_command(rollback)
    main.add_command(laws)
    main.add_command(replay)
    main.add_command(make_top(connection_options))


_register_groups()

if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
