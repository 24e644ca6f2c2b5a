"""Who wrote an event: ed25519 keys, credentials files, envelope signatures.

Each agent has a key pair. ``swarm agents add NAME`` registers the public key in the
swarm's agent registry (a JetStream KV bucket) and writes the credentials file that
the agent's instances load; the SDK signs every envelope with it and the gate checks
the signature against the registry. Once any agent is registered, unsigned events
are refused.

The signed bytes are an explicit, versioned canonical form of the envelope (not a
JSON dump), so the check does not depend on a serializer's formatting.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swarm.errors import ConfigError
from swarm.events import MemoryEvent, Name, utcnow

__all__ = ["AgentEntry", "Credentials", "Role", "sign", "signing_bytes", "verify"]

_SCHEME = b"swarm-sig-v1"

#: What a key may do: an agent writes and reads as itself; the operator ("admin")
#: reads everything and administers the registry; the "service" runs the gate and
#: the projector. See swarm.auth for the NATS permissions of each.
Role = Literal["agent", "admin", "service"]


class Credentials(BaseModel):
    """One key pair, as stored in its credentials file (keep it secret).

    The same key signs an agent's envelopes and logs it in to NATS (as an nkey user).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    swarm: Name
    agent: Name
    public_key: str = Field(description="ed25519 public key, base64")
    secret_key: str = Field(description="ed25519 seed, base64")
    created_at: datetime = Field(default_factory=utcnow)
    role: Role = "agent"

    @classmethod
    def generate(cls, swarm: str, agent: str, *, role: Role = "agent") -> Credentials:
        key = SigningKey.generate()
        return cls(
            swarm=swarm,
            agent=agent,
            public_key=base64.b64encode(bytes(key.verify_key)).decode(),
            secret_key=base64.b64encode(bytes(key)).decode(),
            role=role,
        )

    @property
    def principal(self) -> str:
        """The token naming this key's holder in subjects: the agent's name, or
        ``_admin`` / ``_service`` (agent names never start with '_')."""
        return self.agent if self.role == "agent" else f"_{self.role}"

    @classmethod
    def load(cls, path: str | Path) -> Credentials:
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"no credentials file at {path}") from None
        except ValidationError as err:
            raise ConfigError(
                f"{path} is not a swarm credentials file: {err.errors()[0]['msg']}"
            ) from None

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.model_dump_json(indent=2))
        return target

    def signing_key(self) -> SigningKey:
        return SigningKey(base64.b64decode(self.secret_key))


class AgentEntry(BaseModel):
    """An agent in the registry: its public key and whether it may still write."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: Name
    public_key: str
    roles: tuple[str, ...] = ()
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


def signing_bytes(event: MemoryEvent) -> bytes:
    """The canonical bytes an envelope's signature covers."""
    reason = getattr(event, "reason", None) or ""
    parts = [
        _SCHEME,
        event.id.encode(),
        event.type_name.encode(),
        event.swarm.encode(),
        event.agent.encode(),
        event.instance.encode(),
        event.actor.encode(),
        event.memory_id.encode(),
        event.at.isoformat().encode(),
        hashlib.sha256(event.change).hexdigest().encode(),
        hashlib.sha256(reason.encode()).hexdigest().encode(),
    ]
    return b"\x1f".join(parts)


def sign(event: MemoryEvent, credentials: Credentials) -> MemoryEvent:
    """The event with its ``signature`` set."""
    signature = credentials.signing_key().sign(signing_bytes(event)).signature
    return event.model_copy(update={"signature": base64.b64encode(signature).decode()})


def verify(event: MemoryEvent, public_key: str) -> bool:
    if not event.signature:
        return False
    try:
        key = VerifyKey(base64.b64decode(public_key))
        key.verify(signing_bytes(event), base64.b64decode(event.signature))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
