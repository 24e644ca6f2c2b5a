"""The compose stack in docker/ hangs together (Docker itself is not needed).

Every file the compose file mounts or builds from exists; the NATS nodes form one
cluster (nats-server accepts each config, names and routes agree); the service is
started as `swarm up` accepts it, on every node, with R3 streams, exporting to the
collector; the collector has the pipelines the stack relies on; Prometheus scrapes
the collector; Grafana provisions the data sources and the dashboard, whose queries
use only series swarm/metrics.py catalogues.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from cli.main import main
from swarm.metrics import prometheus_names
from swarm.server import find_nats_server

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
NATS_NODES = ("nats-1", "nats-2", "nats-3")
PANELS = {
    "Ingest rate",
    "Rejections by law",
    "Projection lag (events)",
    "Projection lag (seconds)",
    "Recall latency",
    "Gate latency",
    "Pending approvals",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DOCKER / "compose.yaml")
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (not named volumes)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DOCKER / source).resolve()
    return mounts


def mounted(services: dict[str, Any], name: str, target: str) -> Path:
    return bind_mounts(services[name])[target]


def up_command(args: list[str]) -> dict[str, Any]:
    """The options `swarm up` would run with (parsing fails on an unknown option)."""
    command = main.commands["up"]
    with click.Context(command) as ctx:
        return dict(command.make_context("up", list(args), parent=ctx).params)


def nats_config(path: Path) -> dict[str, Any]:
    """The few settings of a nats-server config the stack depends on."""
    text = path.read_text(encoding="utf-8")
    block = re.search(r"cluster \{(.*?)\n\}", text, re.S)
    assert block, f"{path.name}: no cluster block"
    routes = re.search(r"routes: \[(.*?)\]", block.group(1), re.S)
    return {
        "server_name": re.search(r"^server_name: (\S+)", text, re.M).group(1),  # type: ignore[union-attr]
        "listen": re.search(r"^listen: (\S+)", text, re.M).group(1),  # type: ignore[union-attr]
        "store_dir": re.search(r'store_dir: "([^"]+)"', text).group(1),  # type: ignore[union-attr]
        "cluster_name": re.search(r"name: (\S+)", block.group(1)).group(1),  # type: ignore[union-attr]
        "cluster_listen": re.search(r"listen: (\S+)", block.group(1)).group(1),  # type: ignore[union-attr]
        "routes": routes.group(1).split() if routes else [],
    }


# -- what compose mounts and builds -------------------------------------------------------


def test_compose_runs_the_whole_stack(services: dict[str, Any]) -> None:
    expected = {*NATS_NODES, "swarm", "otel-collector", "jaeger", "prometheus", "grafana"}
    assert set(services) == expected


def test_every_mounted_file_and_the_build_context_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}: missing"
    build = services["swarm"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def test_the_dockerfile_copies_the_package_and_runs_swarm() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    copied = [
        source
        for line in text.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    ]
    for source in copied:
        assert (ROOT / source).exists(), source
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= set(copied)
    assert project["project"]["readme"] in copied
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entrypoint == ["swarm"]
    assert project["project"]["scripts"]["swarm"] == "cli.main:main"
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[0] == "up"
    assert up_command(cmd[1:])["nats_url"]
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for source in copied:
        assert f"!{source.rstrip('/')}" in ignored, f"{source} is excluded from the build context"


# -- the NATS cluster ---------------------------------------------------------------------


def test_nats_server_accepts_every_node_config(services: dict[str, Any]) -> None:
    binary = find_nats_server()
    for node in NATS_NODES:
        config = mounted(services, node, "/etc/nats/nats-server.conf")
        result = subprocess.run(
            [binary, "-t", "-c", str(config)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_nats_nodes_form_one_cluster_with_their_own_names_and_stores(
    services: dict[str, Any],
) -> None:
    configs = {
        node: nats_config(mounted(services, node, "/etc/nats/nats-server.conf"))
        for node in NATS_NODES
    }
    assert {c["cluster_name"] for c in configs.values()} == {"swarm"}
    assert sorted(c["server_name"] for c in configs.values()) == sorted(NATS_NODES)
    for node, config in configs.items():
        assert config["server_name"] == node == services[node]["hostname"]
        route_port = config["cluster_listen"].rsplit(":", 1)[1]
        others = {f"nats://{other}:{route_port}" for other in NATS_NODES if other != node}
        assert set(config["routes"]) == others, node
        # the store is on the node's own named volume
        volumes = dict(v.split(":")[:2] for v in services[node]["volumes"])
        assert volumes.get(node) == config["store_dir"]
        assert config["listen"].endswith(":4222")
        assert "healthz" in " ".join(services[node]["healthcheck"]["test"])


# -- the service --------------------------------------------------------------------------


def test_the_service_runs_on_every_node_with_r3_streams(services: dict[str, Any]) -> None:
    service = services["swarm"]
    assert service["command"][0] == "up"
    options = up_command(service["command"][1:])
    assert options["replicas"] == 3
    urls = [urlsplit(url) for url in options["nats_url"].split(",")]
    assert sorted(u.hostname or "" for u in urls) == sorted(NATS_NODES)
    assert {u.port for u in urls} == {4222}
    for node in NATS_NODES:
        assert service["depends_on"][node]["condition"] == "service_healthy"
    assert options["data_dir"] == "/data"
    assert any(v.endswith(":/data") for v in service["volumes"])


def test_the_service_exports_traces_and_metrics_to_the_collector(
    services: dict[str, Any],
) -> None:
    env = services["swarm"]["environment"]
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_SERVICE_NAME"]
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"  # swarm.telemetry's exporter
    collector = load_yaml(mounted(services, "otel-collector", "/etc/otelcol-contrib/config.yaml"))
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.rsplit(":", 1)[1] == str(endpoint.port) == "4318"


# -- the collector, Prometheus, Jaeger ----------------------------------------------------


def test_the_collector_sends_traces_to_jaeger_and_metrics_to_prometheus(
    services: dict[str, Any],
) -> None:
    config = load_yaml(mounted(services, "otel-collector", "/etc/otelcol-contrib/config.yaml"))
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) >= {"traces", "metrics"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} is not configured"
    assert pipelines["traces"]["receivers"] == pipelines["metrics"]["receivers"] == ["otlp"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"

    (traces,) = pipelines["traces"]["exporters"]
    assert traces.split("/")[0] == "otlp_grpc"
    jaeger = urlsplit("//" + config["exporters"][traces]["endpoint"])
    assert jaeger.hostname == "jaeger"
    assert (
        f"receivers.otlp.protocols.grpc.endpoint=0.0.0.0:{jaeger.port}"
        in (services["jaeger"]["command"])
    )

    (metrics,) = pipelines["metrics"]["exporters"]
    assert metrics.split("/")[0] == "prometheus"
    port = config["exporters"][metrics]["endpoint"].rsplit(":", 1)[1]
    prometheus = load_yaml(mounted(services, "prometheus", "/etc/prometheus/prometheus.yml"))
    targets = [
        target
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert f"otel-collector:{port}" in targets


# -- Grafana ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasources(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    provisioning = mounted(services, "grafana", "/etc/grafana/provisioning")
    sources: dict[str, dict[str, Any]] = {}
    for path in sorted((provisioning / "datasources").glob("*.yaml")):
        for source in load_yaml(path)["datasources"]:
            sources[source["uid"]] = source
    return sources


@pytest.fixture(scope="module")
def dashboard(services: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DOCKER / "grafana" / "dashboards" / "swarm.json").read_text(encoding="utf-8")
    )
    return data


def test_grafana_provisions_prometheus_and_the_tracing_ui(
    datasources: dict[str, dict[str, Any]], services: dict[str, Any]
) -> None:
    by_type = {source["type"]: source for source in datasources.values()}
    assert set(by_type) >= {"prometheus", "jaeger"}
    for kind, service, port in (("prometheus", "prometheus", 9090), ("jaeger", "jaeger", 16686)):
        url = urlsplit(by_type[kind]["url"])
        assert (url.hostname, url.port) == (service, port)
        assert any(p.split(":")[-1] == str(port) for p in services[service]["ports"])


def test_grafana_loads_the_dashboard_from_where_it_is_mounted(
    services: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    provisioning = mounted(services, "grafana", "/etc/grafana/provisioning")
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yaml"))
        for provider in load_yaml(path)["providers"]
    ]
    mounts = bind_mounts(services["grafana"])
    dashboard_dirs = [mounts.get(provider["options"]["path"]) for provider in providers]
    assert DOCKER / "grafana" / "dashboards" in dashboard_dirs
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, name = home.rsplit("/", 1)
    assert (mounts[directory] / name).is_file()
    assert dashboard["uid"] and dashboard["title"]


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query["query"] if isinstance(query, dict) else str(query))
    return queries


PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def series_names(query: str) -> set[str]:
    """The metric names a PromQL expression reads (its functions, labels, keywords and
    Grafana variables left out)."""
    query = re.sub(r'"(?:[^"\\]|\\.)*"', "", query)  # strings (label values)
    query = re.sub(r"\{[^}]*\}", "", query)  # label matchers
    query = re.sub(r"\[[^\]]*\]", "", query)  # ranges
    query = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", query)  # grouping labels
    query = re.sub(r"\$\w+", "", query)  # Grafana variables
    # label_values(metric, label): the label is not a series
    query = re.sub(r"label_values\(([^,()]+),[^)]*\)", r"label_values(\1)", query)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", query):  # not 5m, 1e3
        followed = query[match.end() :].lstrip()
        if followed.startswith("(") or match.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_series_names_reads_metrics_not_functions_or_labels() -> None:
    query = (
        'histogram_quantile(0.95, sum by (le, store) (rate(swarm_x_bucket{swarm=~"$swarm"}'
        "[$__rate_interval]))) / on(job) group_left max without (a) (up offset 5m)"
    )
    assert series_names(query) == {"swarm_x_bucket", "up"}
    assert series_names("label_values(swarm_events_proposed_total, swarm)") == {
        "swarm_events_proposed_total"
    }


def test_the_dashboard_has_the_panels_and_queries_only_catalogued_series(
    dashboard: dict[str, Any], datasources: dict[str, dict[str, Any]]
) -> None:
    assert {panel["title"] for panel in dashboard["panels"]} >= PANELS
    known = prometheus_names()
    for query in panel_queries(dashboard):
        names = series_names(query)
        assert names, query
        assert names <= known, f"{query}: not in swarm.metrics: {names - known}"
    for panel in dashboard["panels"]:
        for ref in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
            if ref is not None:
                assert ref["uid"] in datasources, f"{panel['title']}: unknown data source {ref}"
    quantiles = [q for q in panel_queries(dashboard) if "histogram_quantile" in q]
    for metric in ("swarm_recall_latency_seconds_bucket", "swarm_gate_latency_seconds_bucket"):
        levels = {
            re.search(r"histogram_quantile\(([\d.]+)", q).group(1) for q in quantiles if metric in q
        }  # type: ignore[union-attr]
        assert levels >= {"0.5", "0.95"}, metric
