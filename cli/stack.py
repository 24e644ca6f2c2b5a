"""`swarm up`: an embedded nats-server (or a given one) plus the service.

The service runs as two processes so neither waits on the other's GIL: this one
(projector and reads) and a child running the gate (`swarm serve --role gate`).
The child shares this process group, so stopping or killing the group stops both,
and it stops by itself if this process goes away.

With the embedded server, this process also keeps the server's NATS users in
step with the agent registry (see swarm.auth): it writes the service's and the
admin's credentials under the data directory on first start, watches the
registry, and on every change rewrites the users, reloads the server and records
the registry revision now in force (which `swarm agents add|revoke` wait for).
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
import structlog

from projections.service import Role, SwarmService
from swarm.auth import operator_credentials, server_auth
from swarm.errors import ConfigError, ServerError, SwarmError
from swarm.gatekeeper import APPROVAL_TTL
from swarm.identity import AgentEntry, Credentials
from swarm.jetstream import JetStreamLog, LogSettings, connect
from swarm.laws import laws_from_file
from swarm.server import NatsServer
from swarm.subjects import Subjects

READY_TIMEOUT = 60.0

log = structlog.get_logger(__name__)


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
    creds_file: str | None = None,
    approval_ttl: float = APPROVAL_TTL,
) -> None:
    if laws_file is not None:
        laws_from_file(laws_file)  # fail before starting anything if the file is invalid
    if creds_file is not None and nats_url is None:
        raise ConfigError(
            "--creds is for a server given with --nats; the embedded server's service "
            f"credentials are {data_dir / 'service.creds.json'}"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        server: NatsServer | None = None
        admin_creds: Path | None = None
        creds = Credentials.load(creds_file) if creds_file else None
        if nats_url is None:
            operators = operator_credentials(data_dir, swarm)
            creds, creds_file = operators[0], str(data_dir / "service.creds.json")
            admin_creds = data_dir / "admin.creds.json"
            server = await _start_server(data_dir, swarm, operators, port, sync_interval)
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
            credentials=creds,
        )
        await stack.enter_async_context(service)  # creates the streams before the gate starts
        assert service.log is not None
        if server is not None:
            keeper = await _start_keeper(service, server, operators, data_dir)
            stack.callback(keeper.cancel)
        else:
            await service.log.set_auth_applied(None)  # the operator manages that server's users
        gate = await _start_gate(
            url,
            swarm=swarm,
            data_dir=data_dir,
            replicas=replicas,
            laws_file=laws_file,
            creds_file=creds_file,
            approval_ttl=approval_ttl,
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
            "admin_creds": str(admin_creds.resolve()) if admin_creds else None,
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
    if info.get("admin_creds"):
        click.echo(f"  admin      {info['admin_creds']} (keep it secret)")
    name_opt = f" --name {swarm}" if swarm != "default" else ""
    click.echo(f"  try        swarm remember 'hello' --url {url}{name_opt}")
    click.echo("Press Ctrl-C to stop.")


async def _start_gate(
    url: str,
    *,
    swarm: str,
    data_dir: Path,
    replicas: int,
    laws_file: str | None,
    creds_file: str | None,
    approval_ttl: float,
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
        "--approval-ttl",
        str(approval_ttl),
        *(["--laws", str(Path(laws_file).resolve())] if laws_file else []),
        *(["--creds", str(Path(creds_file).resolve())] if creds_file else []),
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
    creds_file: str | None = None,
    approval_ttl: float = APPROVAL_TTL,
) -> None:
    """One side of the service in this process, until SIGTERM (or its parent goes)."""
    service = SwarmService(
        url,
        swarm=swarm,
        data_dir=data_dir,
        settings=LogSettings(replicas=replicas),
        credentials=Credentials.load(creds_file) if creds_file else None,
        role=role,
        laws=laws_from_file(laws_file) if laws_file else None,
        approval_ttl=approval_ttl,
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


# -- the embedded server's users follow the agent registry ----------------------------


def _registry_cache(data_dir: Path) -> Path:
    return data_dir / "nats" / "registry.json"


def _save_registry(data_dir: Path, swarm: str, entries: list[AgentEntry]) -> None:
    agents = [e.model_dump(mode="json") for e in entries]
    _registry_cache(data_dir).write_text(json.dumps({"swarm": swarm, "agents": agents}))


def _cached_registry(data_dir: Path, swarm: str) -> list[AgentEntry] | None:
    """The registry as last applied, to start the server with the same users: [] for
    a new data directory, None if unknown (then it must be read from the log first)."""
    cache = _registry_cache(data_dir)
    if not cache.is_file():
        return None if (data_dir / "nats" / "jetstream").exists() else []
    data = json.loads(cache.read_text())
    if data.get("swarm") != swarm:
        return None
    return [AgentEntry.model_validate(e) for e in data["agents"]]


async def _read_registry(
    data_dir: Path, swarm: str, operators: tuple[Credentials, Credentials], server: NatsServer
) -> list[AgentEntry]:
    """The registry, read from the log on ``server`` started so that only the
    operators may connect (nats-server cannot turn open mode on by a reload)."""
    server.auth = server_auth(swarm, None, operators)
    await asyncio.to_thread(server.start)
    try:
        nc = await connect(server.url, name="swarm-up", credentials=operators[0])
        try:
            entries = await JetStreamLog(nc, Subjects(swarm)).list_agents()
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
    _save_registry(data_dir, swarm, entries)
    return entries


async def _start_server(
    data_dir: Path,
    swarm: str,
    operators: tuple[Credentials, Credentials],
    port: int,
    sync_interval: str,
) -> NatsServer:
    """The embedded server, started with the users last applied to it."""
    server = NatsServer(data_dir / "nats", port=port, sync_interval=sync_interval)
    registry = _cached_registry(data_dir, swarm)
    if registry is None:
        registry = await _read_registry(data_dir, swarm, operators, server)
    server.auth = server_auth(swarm, registry, operators)
    await asyncio.to_thread(server.start)
    return server


async def _start_keeper(
    service: SwarmService,
    server: NatsServer,
    operators: tuple[Credentials, Credentials],
    data_dir: Path,
) -> asyncio.Task[None]:
    """Start keeping the server's users in step; return once the registry is in force."""
    assert service.log is not None
    ready = asyncio.Event()
    keeper = asyncio.create_task(
        _keep_users(service.log, server, operators, data_dir, service, ready)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait(
        [keeper, waiting], timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    waiting.cancel()
    if not ready.is_set():
        if keeper.done():
            keeper.result()  # raises what went wrong
        keeper.cancel()
        raise ServerError("the agent registry could not be applied to nats-server in time")
    return keeper


async def _keep_users(
    registry: JetStreamLog,
    server: NatsServer,
    operators: tuple[Credentials, Credentials],
    data_dir: Path,
    service: SwarmService,
    ready: asyncio.Event,
) -> None:
    """Reload the server's users on every registry change; a failure stops `swarm up`."""
    swarm = registry.subjects.swarm
    try:
        async for revision, entries in registry.watch_agents():
            # Cache first: a crash before the reload restarts with the new users.
            _save_registry(data_dir, swarm, entries)
            auth = server_auth(swarm, entries, operators)
            if not entries and "no_auth_user" not in server.auth:
                # Emptied by hand: nats-server cannot reopen by a reload, so anonymous
                # connections stay refused until `swarm up` restarts.
                auth = server_auth(swarm, None, operators)
            if auth != server.auth:
                await asyncio.to_thread(server.reload, auth)
                active = sum(e.revoked_at is None for e in entries)
                log.info("nats_users_reloaded", agents=active, open=not entries, revision=revision)
            await registry.set_auth_applied(revision)
            ready.set()
    except asyncio.CancelledError:
        raise
    except Exception as err:
        log.error("nats_users_failed", error=str(err))
        service.failure = service.failure or err
        service.request_stop()
        raise
