"""Render the provisioned Grafana dashboard's layout to an SVG the docs can show.

Docker is not available where this project is built, so instead of a screenshot the
docs show the dashboard as Grafana lays it out: every panel at its grid position
(24 columns), with its title, type, unit and the PromQL it runs. Re-run after editing
the dashboard::

    python bench/render_dashboard.py docker/grafana/dashboards/swarm.json docs/dashboard-layout.svg
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

CELL_W, ROW_H, PAD = 40, 22, 6
WIDTH = 24 * CELL_W


def _wrap(text: str, chars: int) -> list[str]:
    lines, line = [], ""
    for word in text.replace("(", "( ").split(" "):
        if line and len(line) + len(word) + 1 > chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return [ln.replace("( ", "(") for ln in lines]


def render(dashboard: dict[str, Any]) -> str:
    panels = dashboard.get("panels", [])
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0)
    height = 40 + rows * ROW_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="#111217"/>',
        f'<text x="{PAD}" y="26" fill="#d8d9da" font-size="18">'
        f"{escape(dashboard.get('title', 'dashboard'))} "
        "(layout of the provisioned dashboard)</text>",
    ]
    for panel in panels:
        g = panel["gridPos"]
        x, y = g["x"] * CELL_W + PAD / 2, 40 + g["y"] * ROW_H + PAD / 2
        w, h = g["w"] * CELL_W - PAD, g["h"] * ROW_H - PAD
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        out.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="#181b1f" '
            'stroke="#2c3235"/>'
        )
        title = f"{panel.get('title', '')}  ·  {panel.get('type', '')}" + (
            f"  ·  {unit}" if unit else ""
        )
        out.append(
            f'<text x="{x + 8}" y="{y + 18}" fill="#ccccdc" font-size="13" font-weight="bold">'
            f"{escape(title)}</text>"
        )
        line_y = y + 38
        for target in panel.get("targets", []):
            for line in _wrap(target.get("expr", ""), int(w / 6.2)):
                if line_y > y + h - 6:
                    break
                out.append(
                    f'<text x="{x + 8}" y="{line_y}" fill="#8e8e8e" font-size="10" '
                    f'font-family="Menlo, monospace">{escape(line)}</text>'
                )
                line_y += 13
            line_y += 4
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    source = Path(args[0] if args else "docker/grafana/dashboards/swarm.json")
    target = Path(args[1] if len(args) > 1 else "docs/dashboard-layout.svg")
    target.write_text(render(json.loads(source.read_text())))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
