"""`swarm up`: an embedded nats-server (or a given one) plus the service."""

from __future__ import annotations

import asyncio
import json
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import click

from projections.service import SwarmService
from swarm.jetstream import LogSettings
from swarm.server import NatsServer


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
) -> None:
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
            url, swarm=swarm, data_dir=data_dir, settings=LogSettings(replicas=replicas)
        )
        await stack.enter_async_context(service)
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, service.request_stop)
        info = {
            "swarm": swarm,
            "nats": url,
            "embedded": server is not None,
            "nats_store": str((data_dir / "nats").resolve()) if server else None,
            "sync_interval": sync_interval if server else None,
            **{k: str(Path(v).resolve()) for k, v in service.paths.items()},
        }
        if as_json:
            click.echo(json.dumps(info), nl=True)
        else:
            click.echo("Swarm Memory is up")
            click.echo(f"  swarm      {swarm}")
            where = f"embedded, sync_interval={sync_interval}" if server else "external"
            click.echo(f"  nats       {url} ({where})")
            if server:
                click.echo(f"  log store  {info['nats_store']}")
            click.echo(f"  duckdb     {info['duckdb']}")
            click.echo(f"  lancedb    {info['lancedb']}")
            name_opt = f" --name {swarm}" if swarm != "default" else ""
            click.echo(f"  try        swarm remember 'hello' --url {url}{name_opt}")
            click.echo("Press Ctrl-C to stop.")
        await service.wait_closed()
        click.echo("stopping…", err=True)
