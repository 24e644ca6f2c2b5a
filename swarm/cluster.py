"""A local JetStream cluster: N ``nats-server`` processes on loopback ports.

For trying the service on replicated (R3) streams, and for testing what a node loss
does, on one machine and without Docker::

    with NatsCluster(".swarm/cluster", nodes=3) as cluster:
        print(cluster.url)            # nats://127.0.0.1:p1,nats://127.0.0.1:p2,...
        cluster.kill("n2")            # as a crash would
        cluster.start_node("n2")      # it rejoins and catches up

Each node is a :class:`~swarm.server.NatsServer` with its own ``server_name``
(``n1``, ``n2``, …) and store (``<data>/n1/jetstream``), routes to the others, and a
monitoring port whose ``/healthz`` says when it is ready. The layout (names and
ports) is kept in ``<data>/cluster.json``, so starting again on the same directory
resumes the same stores on the same URLs; a lock file keeps a second cluster off it.

The nodes have **no auth**: they listen on 127.0.0.1 only, and anyone on this
machine may connect (the embedded single-node server of `swarm up` keeps its users).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shlex
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import structlog

from swarm.errors import ConfigError, ServerError
from swarm.server import ClusterSettings, NatsServer

__all__ = ["DEFAULT_NAME", "DEFAULT_NODES", "NatsCluster", "Node"]

DEFAULT_NODES = 3
DEFAULT_NAME = "swarm"
LAYOUT_FILE = "cluster.json"
LOCK_FILE = "cluster.lock"

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Node:
    """One node's name and ports, as kept in ``cluster.json``."""

    server_name: str
    port: int
    cluster_port: int
    monitor_port: int


def _free_ports(count: int, host: str) -> list[int]:
    """``count`` different ports free on ``host`` (all held open until all are found)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _ports(base: int | None, stored: list[int] | None, free: list[int]) -> list[int]:
    if base is not None:
        return [base + i for i in range(len(free))]
    return stored if stored is not None else free


class NatsCluster:
    """N local nats-server nodes forming one JetStream cluster, stored under ``data_dir``.

    ``nodes`` and ``name`` default to what ``data_dir`` already holds (else 3 and
    "swarm"); a different value for an existing cluster is a ConfigError. ``port``,
    ``cluster_port`` and ``monitor_port`` are the first node's ports (the others
    count up from them); unset, they are the ports the cluster had, else free ones.
    ``sync_interval`` applies to every node (see :class:`~swarm.server.NatsServer`).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        nodes: int | None = None,
        name: str | None = None,
        port: int | None = None,
        cluster_port: int | None = None,
        monitor_port: int | None = None,
        sync_interval: str = "always",
        host: str = "127.0.0.1",
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.sync_interval = sync_interval
        stored_name, stored_nodes = self._stored()
        if stored_nodes is not None and nodes is not None and nodes != len(stored_nodes):
            raise ConfigError(
                f"{self.data_dir} holds a {len(stored_nodes)}-node cluster, not {nodes}: "
                "use another --data directory for a different size"
            )
        if stored_name is not None and name is not None and name != stored_name:
            raise ConfigError(
                f"{self.data_dir} holds the cluster {stored_name!r}, not {name!r}: "
                "a cluster keeps its name"
            )
        count = len(stored_nodes) if stored_nodes else (nodes or DEFAULT_NODES)
        if count < 1:
            raise ConfigError("a cluster needs at least one node")
        self.name: str = stored_name or name or DEFAULT_NAME

        def column(attr: str) -> list[int] | None:
            return [getattr(n, attr) for n in stored_nodes] if stored_nodes else None

        free = _free_ports(3 * count, host)
        ports = _ports(port, column("port"), free[:count])
        route_ports = _ports(cluster_port, column("cluster_port"), free[count : 2 * count])
        monitor_ports = _ports(monitor_port, column("monitor_port"), free[2 * count :])
        self.layout = [
            Node(f"n{i + 1}", ports[i], route_ports[i], monitor_ports[i]) for i in range(count)
        ]
        taken = [*ports, *route_ports, *monitor_ports]
        if len(set(taken)) != len(taken):
            raise ConfigError(
                "the cluster's client, route and monitoring ports overlap: "
                "give --port, --cluster-port and --monitor-port far enough apart"
            )
        self.servers: dict[str, NatsServer] = {}
        for node in self.layout:
            routes = tuple(
                f"nats://{host}:{other.cluster_port}" for other in self.layout if other != node
            )
            self.servers[node.server_name] = NatsServer(
                self.data_dir / node.server_name,
                port=node.port,
                host=host,
                sync_interval=sync_interval,
                binary=binary,
                cluster=ClusterSettings(self.name, node.server_name, node.cluster_port, routes),
                monitor_port=node.monitor_port,
            )
        self._lock: IO[bytes] | None = None

    def _stored(self) -> tuple[str | None, list[Node] | None]:
        """The name and nodes ``data_dir`` holds from an earlier start, if any."""
        path = self.data_dir / LAYOUT_FILE
        if not path.is_file():
            return None, None
        try:
            data = json.loads(path.read_text())
            return str(data["name"]), [Node(**node) for node in data["nodes"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} is not a cluster layout: {err}") from None

    # -- what it is ----------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Every node's client URL, in node order."""
        return [server.url for server in self.servers.values()]

    @property
    def url(self) -> str:
        """The client URLs as one comma-separated list (what ``--nats`` and ``--url`` take)."""
        return ",".join(self.urls)

    @property
    def replicas(self) -> int:
        """The stream replicas to ask for on this cluster: 3, or fewer nodes' worth."""
        return min(3, len(self.layout))

    def service_command(self, data_dir: str = ".swarm") -> str:
        """The `swarm up` command that runs the service on this cluster."""
        return shlex.join(
            [
                "swarm",
                "up",
                "--nats",
                self.url,
                "--replicas",
                str(self.replicas),
                "--data",
                data_dir,
            ]
        )

    def node(self, server_name: str) -> NatsServer:
        try:
            return self.servers[server_name]
        except KeyError:
            raise ConfigError(
                f"no node {server_name!r} in this cluster (nodes: {', '.join(self.servers)})"
            ) from None

    def info(self) -> dict[str, Any]:
        return {
            "cluster": self.name,
            "nats": self.url,
            "urls": self.urls,
            "replicas": self.replicas,
            "sync_interval": self.sync_interval,
            "data": str(self.data_dir.resolve()),
            "nodes": [
                {
                    "name": node.server_name,
                    "url": self.servers[node.server_name].url,
                    "cluster_port": node.cluster_port,
                    "monitor": f"http://{self.host}:{node.monitor_port}",
                    "store": str((self.data_dir / node.server_name / "jetstream").resolve()),
                    "log": str(self.servers[node.server_name].log_path.resolve()),
                }
                for node in self.layout
            ],
            "service_command": self.service_command(),
        }

    # -- running it ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every node and wait until each reports healthy (a JetStream meta
        leader elected; on a resumed cluster, every stream caught up)."""
        self._acquire()
        try:
            self._save()
            for server in self.servers.values():
                server.start()
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        log.info("nats_cluster_started", cluster=self.name, nodes=len(self.servers), url=self.url)
        return self

    def wait_healthy(self, names: list[str] | None = None, timeout: float = 30.0) -> None:
        """Wait until the named nodes (default: all) report healthy, else ServerError."""
        waiting = [self.node(name) for name in (names or list(self.servers))]
        deadline = time.monotonic() + timeout
        while True:
            waiting = [server for server in waiting if not server.healthy()]
            if not waiting:
                return
            for server in waiting:
                if not server.running:
                    raise ServerError(
                        f"nats-server {server.url} is not running: see {server.log_path}"
                    )
            if time.monotonic() > deadline:
                names_left = ", ".join(s.store_dir.name for s in waiting)
                raise ServerError(
                    f"the cluster's nodes {names_left} did not become healthy in {timeout:.0f}s: "
                    f"see their logs under {self.data_dir}"
                )
            time.sleep(0.2)  # each probe is a line in the node's log while not ready

    def kill(self, server_name: str) -> None:
        """Stop one node at once, as a crash would (SIGKILL)."""
        self.node(server_name).kill()

    def stop_node(self, server_name: str) -> None:
        self.node(server_name).stop()

    def start_node(self, server_name: str, timeout: float = 30.0) -> None:
        """Start one stopped node again, on its store; returns once it is healthy
        (rejoined, and caught up on every stream it holds)."""
        self.node(server_name).start()
        self.wait_healthy([server_name], timeout=timeout)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 10 s) and release the directory."""
        for server in self.servers.values():
            server.stop()
        self._release()

    @property
    def running(self) -> list[str]:
        """The names of the nodes whose process runs."""
        return [name for name, server in self.servers.items() if server.running]

    def _save(self) -> None:
        data = {"name": self.name, "nodes": [asdict(node) for node in self.layout]}
        (self.data_dir / LAYOUT_FILE).write_text(json.dumps(data, indent=2) + "\n")

    def _acquire(self) -> None:
        if self._lock is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / LOCK_FILE).open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ServerError(
                f"a cluster is already running from {self.data_dir}: stop it first, "
                "or use another --data directory"
            ) from None
        self._lock = lock

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
