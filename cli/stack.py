"""`swarm up`: an embedded nats-server (or a given one) plus the service.

The service runs as two processes so neither waits on the other's GIL: this one
(projector and reads) and a child running the gate (`swarm serve --role gate`).
The child shares this process group, so stopping or killing the group stops both,
and it stops by itself if this process goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import click

from projections.service import Role, SwarmService
from swarm.errors import ServerError, SwarmError
from swarm.jetstream import LogSettings
from swarm.laws import laws_from_file
from swarm.server import NatsServer

READY_TIMEOUT = 60.0


async def run_stack(
    data_dir: Path,
    *,
    port: int = 4222,
    nats_url: str | None = None,
    sync_interval: str = "always",
    swarm: str = "default",
    as_json: bool = False,
    install_signals: bool = False,
    replicas: int = 1,
    laws_file: str | None = None,
) -> None:
    if laws_file is not None:
        laws_from_file(laws_file)  # fail before starting anything if the file is invalid
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        server: NatsServer | None = None
        if nats_url is None:
            server = NatsServer(data_dir / "nats", port=port, sync_interval=sync_interval)
            await asyncio.to_thread(server.start)
            stack.callback(server.stop)
            url = server.url
        else:
            url = nats_url
        service = SwarmService(
            url,
            swarm=swarm,
            data_dir=data_dir,
            settings=LogSettings(replicas=replicas),
            role="projector",
        )
        await stack.enter_async_context(service)  # creates the streams before the gate starts
        gate = await _start_gate(
            url, swarm=swarm, data_dir=data_dir, replicas=replicas, laws_file=laws_file
        )
        stack.callback(_stop_child, gate)
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, service.request_stop)
        watcher = asyncio.create_task(_watch_child(gate, service))
        stack.callback(watcher.cancel)
        info = {
            "swarm": swarm,
            "nats": url,
            "embedded": server is not None,
            "nats_store": str((data_dir / "nats").resolve()) if server else None,
            "sync_interval": sync_interval if server else None,
            "gate_pid": gate.pid,
            **{k: str(Path(v).resolve()) for k, v in service.paths.items()},
        }
        _announce(info, as_json=as_json, server=server, url=url, swarm=swarm)
        await service.wait_closed()
        if gate.poll() is not None and gate.returncode not in (0, -signal.SIGTERM):
            raise SwarmError(f"the gate process exited with status {gate.returncode}")
        click.echo("stopping…", err=True)


def _announce(
    info: Mapping[str, object], *, as_json: bool, server: NatsServer | None, url: str, swarm: str
) -> None:
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo("Swarm Memory is up")
    click.echo(f"  swarm      {swarm}")
    where = f"embedded, sync_interval={info['sync_interval']}" if server else "external"
    click.echo(f"  nats       {url} ({where})")
    if server:
        click.echo(f"  log store  {info['nats_store']}")
    click.echo(f"  duckdb     {info['duckdb']}")
    click.echo(f"  lancedb    {info['lancedb']}")
    click.echo(f"  gate       process {info['gate_pid']}")
    name_opt = f" --name {swarm}" if swarm != "default" else ""
    click.echo(f"  try        swarm remember 'hello' --url {url}{name_opt}")
    click.echo("Press Ctrl-C to stop.")


async def _start_gate(
    url: str, *, swarm: str, data_dir: Path, replicas: int, laws_file: str | None
) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--role",
        "gate",
        "--nats",
        url,
        "--name",
        swarm,
        "--data",
        str(data_dir),
        "--replicas",
        str(replicas),
        "--parent",
        str(os.getpid()),
        "--json",
        *(["--laws", str(Path(laws_file).resolve())] if laws_file else []),
    ]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - once, at start
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), READY_TIMEOUT)
    except TimeoutError:
        _stop_child(child)
        raise ServerError(f"the gate process did not start within {READY_TIMEOUT:.0f}s") from None
    if not line.startswith("{"):
        _stop_child(child)
        raise ServerError(f"the gate process failed to start (status {child.poll()})")
    return child


async def _watch_child(child: subprocess.Popen[str], service: SwarmService) -> None:
    while child.poll() is None:  # noqa: ASYNC110 - polling another process
        await asyncio.sleep(0.5)
    service.request_stop()


def _stop_child(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def run_role(
    data_dir: Path,
    *,
    url: str,
    swarm: str,
    role: Role,
    replicas: int = 1,
    parent: int | None = None,
    as_json: bool = False,
    laws_file: str | None = None,
) -> None:
    """One side of the service in this process, until SIGTERM (or its parent goes)."""
    service = SwarmService(
        url,
        swarm=swarm,
        data_dir=data_dir,
        settings=LogSettings(replicas=replicas),
        role=role,
        laws=laws_from_file(laws_file) if laws_file else None,
    )
    async with service:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.request_stop)
        orphan_watch = None
        if parent is not None:
            orphan_watch = asyncio.create_task(_watch_parent(parent, service))
        click.echo(json.dumps({"role": role, "pid": os.getpid(), "swarm": swarm, "nats": url}))
        try:
            await service.wait_closed()
        finally:
            if orphan_watch is not None:
                orphan_watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await orphan_watch


async def _watch_parent(parent: int, service: SwarmService) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 - polling another process
        await asyncio.sleep(0.5)
    service.request_stop()
