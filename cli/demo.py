"""`swarm demo`: a private stack, three agent instances, narrated.

Starts an embedded nats-server and the service in a temporary directory, then
runs brad@cloud, brad@laptop and ann@desk concurrently and shows: shared
writes, a concurrent edit merging, a write refused by a law, a recall by
another agent, and one memory's history.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import click

from projections.service import SwarmService
from swarm.client import SwarmClient
from swarm.errors import LawViolation
from swarm.server import NatsServer, free_port


def say(step: str, text: str) -> None:
    click.echo(click.style(f"\n[{step}] ", fg="cyan", bold=True) + click.style(text, bold=True))


def show(text: str) -> None:
    click.echo(f"    {text}")


async def run_demo(*, keep: bool = False) -> None:
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="swarm-demo-"))
    server = NatsServer(root / "nats", port=free_port())
    try:
        say("1/7", "Starting a private stack: embedded nats-server (JetStream) + gate + projector")
        await asyncio.to_thread(server.start)
        show(f"nats-server at {server.url}, data in {root}")
        async with SwarmService(server.url, swarm="demo", data_dir=root) as service:
            show(f"DuckDB  {service.paths['duckdb']}")
            show(f"LanceDB {service.paths['lancedb']}")
            await _story(server.url)
    finally:
        server.stop()
        if keep:
            click.echo(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    click.echo(f"\ndone in {time.perf_counter() - started:.1f}s")


async def _story(url: str) -> None:
    cloud, laptop, ann = await asyncio.gather(
        SwarmClient.connect(url, swarm="demo", agent="brad", instance="cloud"),
        SwarmClient.connect(url, swarm="demo", agent="brad", instance="laptop"),
        SwarmClient.connect(url, swarm="demo", agent="ann", instance="desk"),
    )
    try:
        say("2/7", "Three instances write at the same time (brad@cloud, brad@laptop, ann@desk)")
        deploy, coffee, review = await asyncio.gather(
            cloud.remember(
                "The staging database moves to eu-west-2 on Friday at 18:00 UTC",
                kind="fact",
                tags=["ops", "database"],
                importance=0.8,
            ),
            laptop.remember(
                "Brad prefers short status updates with the blockers first",
                kind="preference",
                tags=["team"],
            ),
            ann.remember(
                "Code review checklist: tests, migration plan, rollback notes",
                kind="procedure",
                tags=["process"],
            ),
        )
        for who, r in (("brad@cloud", deploy), ("brad@laptop", coffee), ("ann@desk", review)):
            show(f"{who:<12} remembered {r.id}  -> log seq {r.seq}")

        say("3/7", "Concurrent edits of one memory from two instances of brad")
        show("cloud changes the time, laptop adds a tag; both reinforce it")
        results = await asyncio.gather(
            cloud.update(
                deploy.id,
                content="The staging database moves to eu-west-2 on Saturday at 09:00 UTC",
            ),
            laptop.update(deploy.id, add_tags=["migration"]),
            cloud.reinforce(deploy.id),
            laptop.reinforce(deploy.id),
        )
        last = max(r.seq for r in results)
        merged = await ann.get(deploy.id, after=last)
        show(f"merged content : {merged['content']}")
        show(f"merged tags    : {', '.join(merged['tags'])}")
        show(f"recall count   : {merged['recall_count']} (one increment from each instance)")

        say("4/7", "ann tries to store a phone number and an email: the gate's law refuses it")
        try:
            await ann.remember("Call the vendor at +1 415 555 0134 or ops@vendor-example.com")
            show("accepted?! (this should not happen)")
        except LawViolation as err:
            show(f"rejected by law {err.law!r}: {err.reason}")
            show(f"where: {err.where}")
        status = await ann.status()
        show(f"the log never saw it; rejections recorded for audit: {status['rejected']}")

        say("5/7", "A private note stays private")
        note = await laptop.remember("Brad's draft: consider moving to Postgres 17", private=True)
        mine = await laptop.recall("moving to Postgres", after=note.seq)
        theirs = await ann.recall("moving to Postgres", after=note.seq)
        show(f"brad recalls 'moving to Postgres': found = {any(h['id'] == note.id for h in mine)}")
        leaked = any(h["id"] == note.id for h in theirs)
        show(
            f"ann recalls 'moving to Postgres':  found = {leaked}"
            f"{'  <- LEAK' if leaked else '  (private to brad)'}"
        )

        say("6/7", "ann recalls what brad's instances wrote (hybrid semantic + full-text search)")
        for hit in await ann.recall("when does the staging database move?", k=3):
            show(f"{hit['score']:.3f}  {hit['agent']:<5} {hit['content']}")

        say("7/7", f"History of memory {deploy.id}")
        history = await ann.history(deploy.id)
        for v in history["versions"]:
            state = v["state"]
            show(
                f"seq {v['seq']:>3}  {v['agent']}@{v['instance']:<7} {v['type']:<18} "
                f"tags={','.join(state['tags'])} recalled={state['recall_count']}"
            )
        status = await ann.status()
        show(
            f"log seq {status['log_seq']}, projected {status['projected_seq']}, "
            f"lag {status['lag']}, {status['memories']} memories, {status['rejected']} rejected"
        )
    finally:
        await asyncio.gather(cloud.close(), laptop.close(), ann.close())
