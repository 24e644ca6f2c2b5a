"""Shared fixtures: a real nats-server with JetStream per test session."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from swarm.server import NatsServer, free_port

_names = itertools.count(1)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """`nats-server -js` on a free port with a temp store, for the whole session.

    sync_interval=always, the product's default: tests see the real durability path.
    """
    store = tmp_path_factory.mktemp("nats")
    server = NatsServer(store, port=free_port(), sync_interval="always")
    server.start()
    yield server
    from tests.integration.stack import kill_leftovers  # noqa: PLC0415

    kill_leftovers()
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def swarm_name() -> str:
    """A fresh swarm per test: its own streams on the shared server."""
    return f"t{next(_names)}"


@pytest.fixture
async def service(nats_url: str, swarm_name: str, tmp_path: Path) -> AsyncIterator[object]:
    from projections.service import SwarmService  # noqa: PLC0415

    async with SwarmService(nats_url, swarm=swarm_name, data_dir=tmp_path / "data") as svc:
        yield svc
