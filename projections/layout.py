"""Where a swarm's projections and keystore live under a data directory.

The same layout for the service's data directory, a replay's directory and a
backup, so every offline read and every erasure finds them::

    <data>/swarms/<swarm>/state.duckdb     DuckDB (content sealed)
    <data>/swarms/<swarm>/recall/          LanceDB (plain text: scrubbed on erasure)
    <data>/swarms/<swarm>/asof/            recall snapshots (dropped on erasure)
    <data>/keys/<swarm>.db                 the keystore (the service's directory only)

The keystore is not derived data: it sits outside ``swarms/`` so that deleting a
swarm's projections to rebuild them never takes the keys (without them no memory's
content can be read again).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["asof_path", "keystore_path", "store_paths"]


def store_paths(data_dir: str | Path, swarm: str) -> tuple[Path, Path]:
    """Where a swarm's DuckDB file and LanceDB directory live under ``data_dir``."""
    base = Path(data_dir) / "swarms" / swarm
    return base / "state.duckdb", base / "recall"


def asof_path(data_dir: str | Path, swarm: str) -> Path:
    return Path(data_dir) / "swarms" / swarm / "asof"


def keystore_path(data_dir: str | Path, swarm: str) -> Path:
    return Path(data_dir) / "keys" / f"{swarm}.db"
