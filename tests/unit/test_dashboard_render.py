"""The dashboard image in the docs is the provisioned dashboard, rendered (and current)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "swarm.json"
IMAGE = ROOT / "docs" / "dashboard-layout.svg"


def _render() -> str:
    spec = importlib.util.spec_from_file_location(
        "render_dashboard", ROOT / "bench" / "render_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render(json.loads(DASHBOARD.read_text())))


def test_the_docs_image_is_the_current_dashboard_rendered() -> None:
    fresh = _render()
    assert IMAGE.read_text() == fresh, "re-run: python bench/render_dashboard.py"
    ElementTree.fromstring(fresh)  # well-formed SVG
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["title"] in fresh
    assert "dashboard-layout.svg" in (ROOT / "docs" / "observability.md").read_text()
