"""``swarm approvals`` and the swarm-facing law commands (``swarm laws list|history``).

Writes that a ``require_approval`` law holds wait as proposals; an authorised
principal (the admin, or an agent with the ``approver`` role) lists them and
approves or denies each.

The commands take the connection options of :mod:`cli.main`, which passes them
in (importing that module from here would run it twice under ``python -m``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.common import run_async

__all__ = ["make_approvals", "register_law_reads"]

STATUSES = ("pending", "approved", "denied", "expired", "failed", "all")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Emit = Callable[[Any, Any, Callable[[Any], str]], None]


def _proposal_line(row: dict[str, Any]) -> str:
    laws = ", ".join(law["law"] for law in row["laws"]) or "-"
    line = (
        f"{row['proposal']}  {row['status']:<8} {row['type']:<18} {row['memory_id']}  "
        f"by {row['agent']}@{row['instance']}  laws: {laws}"
    )
    if row["status"] == "pending":
        return f"{line}  expires {row['expires_at'][:19]}"
    why = f": {row['reason']}" if row["reason"] else ""
    return f"{line}  {row['status']} by {row['decided_by']}{why}"


def _decision(d: dict[str, Any]) -> str:
    if d["status"] == "approved":
        return (
            f"approved {d['proposal']}: {d['type']} of {d['memory_id']} "
            f"is in the log (seq {d['event_seq']})"
        )
    return _proposal_line(d)


def make_approvals(connection_options: Decorator, emit: Emit) -> click.Group:
    """The ``swarm approvals`` group."""

    status_option = click.option(
        "--status",
        type=click.Choice(STATUSES),
        default="pending",
        show_default=True,
        help="Which proposals to show.",
    )

    async def show(ctx: Any, status: str) -> None:
        async with await ctx.client() as client:
            rows = await client.approvals(status=status)

        def human(d: dict[str, Any]) -> str:
            if not d["proposals"]:
                return "no proposals" if status == "all" else f"no {status} proposals"
            return "\n".join(_proposal_line(r) for r in d["proposals"])

        emit(ctx, {"proposals": rows}, human)

    @click.group(
        name="approvals",
        invoke_without_command=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @status_option
    @connection_options
    @run_async
    async def approvals(ctx: Any, status: str) -> None:
        """Writes held for approval: list (the default), approve, deny."""
        if click.get_current_context().invoked_subcommand is None:
            await show(ctx, status)

    @approvals.command("list")
    @status_option
    @connection_options
    @run_async
    async def list_approvals(ctx: Any, status: str) -> None:
        """Proposals held for approval (pending ones by default)."""
        await show(ctx, status)

    def decision(verb: str, doc: str) -> None:
        @approvals.command(verb, help=doc)
        @click.argument("proposal")
        @click.option("--reason", default=None, help="Why (recorded in the log).")
        @connection_options
        @run_async
        async def decide(ctx: Any, proposal: str, reason: str | None) -> None:
            async with await ctx.client() as client:
                act = client.approve if verb == "approve" else client.deny
                emit(ctx, await act(proposal, reason=reason), _decision)

    decision("approve", "Approve PROPOSAL: its write enters the log.")
    decision("deny", "Deny PROPOSAL: its write never enters the log.")

    return approvals


def register_law_reads(group: click.Group, connection_options: Decorator, emit: Emit) -> None:
    """Add ``list`` and ``history`` (they ask the running swarm) to ``swarm laws``."""

    @group.command("list")
    @connection_options
    @run_async
    async def list_laws(ctx: Any) -> None:
        """The laws the swarm enforces now, in the order they run."""
        async with await ctx.client() as client:
            data = await client.laws()

        def human(d: dict[str, Any]) -> str:
            lines = [f"law set {d['law_set']}"]
            for law in d["laws"]:
                since = f"  (enacted at seq {law['enacted_seq']})" if "enacted_seq" in law else ""
                kind = law.get("kind", "-")
                lines.append(f"  {law['id']:<22} {kind:<14} {law['action']:<17}{since}")
            return "\n".join(lines)

        emit(ctx, data, human)

    @group.command("history")
    @connection_options
    @run_async
    async def law_history(ctx: Any) -> None:
        """Every law enacted, changed or repealed, with its log sequence."""
        async with await ctx.client() as client:
            rows = await client.law_history()

        def human(d: dict[str, Any]) -> str:
            if not d["history"]:
                return "no law changes recorded (law objects set in code are not recorded)"
            return "\n".join(
                f"{r['seq']:>7}  {r['at'][:19]}  {r['change']:<9} {r['law']:<22} "
                f"by {r['by']:<10} law set {r['law_set']}"
                for r in d["history"]
            )

        emit(ctx, {"history": rows}, human)
