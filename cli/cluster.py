"""``swarm cluster up``: a local NATS JetStream cluster (N nodes on 127.0.0.1), until Ctrl-C.

A thin wrapper over :class:`swarm.cluster.NatsCluster`: it prints the nodes' URLs
and the `swarm up --nats … --replicas 3` command that runs the service on them. The
nodes have no auth (see docs/operations.md).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from cli.common import _fail
from swarm.cluster import DEFAULT_NAME, DEFAULT_NODES, NatsCluster
from swarm.errors import SwarmError

__all__ = ["cluster"]

DEFAULT_DATA = ".swarm/cluster"
F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def cluster() -> None:
    """A local NATS JetStream cluster, to run the service on replicated streams."""


def _port_option(flag: str, what: str) -> Callable[[F], F]:
    return click.option(
        flag,
        type=click.IntRange(1, 65535),
        default=None,
        help=f"{what} of the first node; the others count up from it "
        "(default: the ports the cluster had, else free ones).",
    )


@cluster.command("up")
@click.option(
    "--nodes",
    type=click.IntRange(3, 9),
    default=None,
    help=f"Number of nodes (default: what --data holds, else {DEFAULT_NODES}).",
)
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory of the nodes' stores; the same directory resumes the same cluster.",
)
@_port_option("--port", "Client port")
@_port_option("--cluster-port", "Route port")
@_port_option("--monitor-port", "Monitoring (HTTP) port")
@click.option(
    "--cluster-name",
    "name",
    default=None,
    help=f"Name of the cluster (default: what --data holds, else {DEFAULT_NAME}).",
)
@click.option(
    "--sync",
    "sync_interval",
    default="always",
    show_default=True,
    help="JetStream sync_interval of every node: 'always' or a duration like 1s.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print where everything is as JSON, then run."
)
def up(
    nodes: int | None,
    data_dir: str,
    port: int | None,
    cluster_port: int | None,
    monitor_port: int | None,
    name: str | None,
    sync_interval: str,
    as_json: bool,
) -> None:
    """Start a local JetStream cluster until Ctrl-C or SIGTERM (no auth, 127.0.0.1 only)."""
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    try:
        nats = NatsCluster(
            data_dir,
            nodes=nodes,
            name=name,
            port=port,
            cluster_port=cluster_port,
            monitor_port=monitor_port,
            sync_interval=sync_interval,
        )
        nats.start()
    except SwarmError as err:
        _fail(str(err))
        return
    status = 0
    try:
        _announce(nats, as_json=as_json)
        while not stop.wait(0.5):
            gone = [node for node in nats.servers if node not in nats.running]
            if gone:
                logs = ", ".join(str(nats.node(node).log_path) for node in gone)
                click.echo(f"error: node {', '.join(gone)} exited: see {logs}", err=True)
                status = 1
                break
    finally:
        click.echo("stopping…", err=True)
        nats.stop()
    sys.exit(status)


def _announce(nats: NatsCluster, *, as_json: bool) -> None:
    info = nats.info()
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(
        f"NATS JetStream cluster {info['cluster']!r} is up: {len(info['nodes'])} nodes, "
        f"sync_interval={info['sync_interval']}, no auth, 127.0.0.1 only"
    )
    for node in info["nodes"]:
        click.echo(
            f"  {node['name']:<4} {node['url']}  routes :{node['cluster_port']}  "
            f"monitor {node['monitor']}  store {node['store']}"
        )
    click.echo(f"  nats     {info['nats']}")
    click.echo(f"  service  {info['service_command']}")
    click.echo("Press Ctrl-C to stop.")
