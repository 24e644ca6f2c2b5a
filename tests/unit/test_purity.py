"""The pure core imports no I/O stack: no NATS, no stores, no telemetry SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_MODULES = (
    "swarm.events",
    "swarm.codec",
    "swarm.crdt",
    "swarm.gate",
    "swarm.laws",
    "swarm.subjects",
    "projections.reducers",
)
FORBIDDEN = ("nats", "duckdb", "lancedb", "opentelemetry.sdk")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(*modules: str) -> set[str]:
    """Module names in sys.modules of a fresh interpreter after importing ``modules``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def forbidden_in(names: set[str]) -> list[str]:
    return sorted(n for n in names for f in FORBIDDEN if n == f or n.startswith(f + "."))


def test_importing_the_pure_core_loads_no_io_stack() -> None:
    names = loaded_modules(*PURE_MODULES)
    assert set(PURE_MODULES) <= names  # the probe really imported them
    assert forbidden_in(names) == []


@pytest.mark.parametrize("module", PURE_MODULES)
def test_importing_one_pure_module_loads_no_io_stack(module: str) -> None:
    names = loaded_modules(module)
    assert module in names
    assert forbidden_in(names) == []


def test_the_probe_sees_an_io_module_when_one_is_imported() -> None:
    # Guards the check itself: if the probe could not see such imports, the tests above
    # would pass whatever the core imported.
    assert forbidden_in(loaded_modules("nats")) != []
    assert "opentelemetry.sdk.trace" in forbidden_in({"opentelemetry.sdk.trace", "natsort"})
    assert forbidden_in({"natsort", "opentelemetry", "opentelemetry.trace"}) == []
