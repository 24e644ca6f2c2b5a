"""Swarm Memory: one shared, trustworthy memory for a swarm of AI agents.

The public surface is small::

    from swarm import SwarmClient, SyncSwarmClient, Receipt, SwarmError

Everything else (the gate, the log, the CRDT layer) is importable from its
module for people who extend the service, and may change between minor releases.
"""

from typing import TYPE_CHECKING, Any

from swarm.errors import (
    ChangeError,
    ConfigError,
    ConnectionFailed,
    IdentityError,
    LawViolation,
    NotFound,
    Rejected,
    SchemaError,
    SizeLimitExceeded,
    SwarmError,
    Timeout,
)
from swarm.events import Receipt
from swarm.laws.detectors import redact

if TYPE_CHECKING:
    from swarm.client import SwarmClient, SyncSwarmClient

__all__ = [
    "ChangeError",
    "ConfigError",
    "ConnectionFailed",
    "IdentityError",
    "LawViolation",
    "NotFound",
    "Receipt",
    "Rejected",
    "SchemaError",
    "SizeLimitExceeded",
    "SwarmClient",
    "SwarmError",
    "SyncSwarmClient",
    "Timeout",
    "redact",
]


def __getattr__(name: str) -> Any:
    # The client (and with it nats) loads on first use, so importing the pure
    # core (swarm.events, swarm.crdt, swarm.gate …) never pulls in the I/O stack.
    if name in ("SwarmClient", "SyncSwarmClient"):
        from swarm import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module 'swarm' has no attribute {name!r}")
