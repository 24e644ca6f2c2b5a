"""`swarm cluster up` as a user runs it: ready line, Ctrl-C / SIGTERM, resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.stack import ROOT

pytestmark = pytest.mark.integration


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def command(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "cluster", "up", "--data", str(data), *args]


def run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`swarm cluster up` expected to exit by itself."""
    return subprocess.run(
        command(data, *args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=30,
        check=False,
    )


def start(data: Path, *args: str) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        command(data, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"swarm cluster up exited {proc.wait()}: {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, (json.loads(line) if line.startswith("{") else {"text": line})


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (the nodes are stopped with it), SIGKILL only if that hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def accepts(url: str) -> bool:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_cluster_up_prints_the_nodes_and_stops_on_sigterm_then_resumes(tmp_path: Path) -> None:
    proc, info = start(tmp_path, "--json")
    try:
        assert info["cluster"] == "swarm"
        assert [n["name"] for n in info["nodes"]] == ["n1", "n2", "n3"]
        assert info["nats"] == ",".join(info["urls"])
        assert info["service_command"].startswith(f"swarm up --nats {info['nats']} --replicas 3")
        assert all(accepts(url) for url in info["urls"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop(proc)
    assert not any(accepts(url) for url in info["urls"])  # every node stopped

    again, resumed = start(tmp_path, "--json")
    try:
        assert resumed["urls"] == info["urls"]
        assert [n["store"] for n in resumed["nodes"]] == [n["store"] for n in info["nodes"]]
        second = run(tmp_path)
        assert second.returncode == 1
        assert second.stderr.startswith("error: a cluster is already running from")
        again.send_signal(signal.SIGINT)  # Ctrl-C
        assert again.wait(20) == 0
    finally:
        stop(again)
    assert not any(accepts(url) for url in resumed["urls"])


def test_cluster_up_prints_the_service_command_for_people(tmp_path: Path) -> None:
    proc, first = start(tmp_path, "--nodes", "3")
    try:
        assert first["text"].startswith("NATS JetStream cluster 'swarm' is up: 3 nodes")
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        assert lines[-1].startswith("Press Ctrl-C to stop.")
        assert any(line.strip().startswith("service  swarm up --nats nats://") for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop(proc)


def test_cluster_up_refuses_a_different_size_for_an_existing_cluster(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(
        json.dumps(
            {
                "name": "swarm",
                "nodes": [
                    {"server_name": f"n{i}", "port": 1, "cluster_port": 2, "monitor_port": 3}
                    for i in (1, 2, 3)
                ],
            }
        )
    )
    result = run(tmp_path, "--nodes", "5")
    assert result.returncode == 1
    assert "holds a 3-node cluster, not 5" in result.stderr
