"""How `swarm cluster up` lays out its nodes: names, ports, routes, and what a data
directory that already holds a cluster decides (nothing is started here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from swarm.cluster import LAYOUT_FILE, NatsCluster
from swarm.errors import ConfigError


def test_ports_count_up_from_the_given_ones_and_routes_name_the_others(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, nodes=3, port=14222, cluster_port=16222, monitor_port=18222)
    assert [n.server_name for n in cluster.layout] == ["n1", "n2", "n3"]
    assert cluster.urls == [f"nats://127.0.0.1:{p}" for p in (14222, 14223, 14224)]
    assert cluster.url == ",".join(cluster.urls)
    for node in cluster.layout:
        settings = cluster.node(node.server_name).cluster
        assert settings is not None
        assert settings.server_name == node.server_name
        assert settings.name == "swarm"
        others = {f"nats://127.0.0.1:{o.cluster_port}" for o in cluster.layout if o != node}
        assert set(settings.routes) == others
        assert cluster.node(node.server_name).monitor_port == node.monitor_port
    assert cluster.replicas == 3
    assert cluster.service_command() == (
        f"swarm up --nats {cluster.url} --replicas 3 --data .swarm"
    )


def test_free_ports_are_all_different(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, nodes=5)
    ports = [p for n in cluster.layout for p in (n.port, n.cluster_port, n.monitor_port)]
    assert len(set(ports)) == 15
    assert cluster.replicas == 3


def test_a_directory_keeps_its_size_name_and_ports(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text(
        json.dumps(
            {
                "name": "lab",
                "nodes": [
                    {"server_name": f"n{i}", "port": 100 + i, "cluster_port": 200 + i,
                     "monitor_port": 300 + i}
                    for i in (1, 2, 3)
                ],
            }
        )
    )  # fmt: skip
    cluster = NatsCluster(tmp_path)
    assert cluster.name == "lab"
    assert [n.port for n in cluster.layout] == [101, 102, 103]
    assert NatsCluster(tmp_path, port=4000).urls[0] == "nats://127.0.0.1:4000"
    with pytest.raises(ConfigError, match="3-node cluster, not 5"):
        NatsCluster(tmp_path, nodes=5)
    with pytest.raises(ConfigError, match="keeps its name"):
        NatsCluster(tmp_path, name="other")


def test_a_damaged_layout_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text('{"name": "x"}')
    with pytest.raises(ConfigError, match="not a cluster layout"):
        NatsCluster(tmp_path)


def test_overlapping_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="overlap"):
        NatsCluster(tmp_path, nodes=3, port=14222, cluster_port=14223)


def test_nats_server_accepts_a_node_config(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, nodes=3, port=14222, cluster_port=16222, monitor_port=18222)
    server = cluster.node("n2")
    server._write_config()  # what start() writes
    text = server.config_path.read_text()
    assert 'server_name: "n2"' in text
    assert "http: 127.0.0.1:18223" in text
    result = subprocess.run(
        [server.binary, "-t", "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
