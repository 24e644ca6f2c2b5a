"""Every error Swarm Memory raises, in one hierarchy.

::

    SwarmError
    ├── ConfigError(SwarmError, ValueError)        bad settings or options
    ├── ConnectionFailed(SwarmError, ConnectionError)  no NATS, or no service answering
    ├── ServerError(SwarmError, RuntimeError)      the embedded nats-server would not start
    ├── Timeout(SwarmError, TimeoutError)          a receipt or read did not arrive in time
    ├── NotFound(SwarmError, LookupError)          no such memory (or not visible to you)
    ├── Forbidden(SwarmError, PermissionError)     not authorised (e.g. to decide a proposal)
    ├── StoreError(SwarmError, RuntimeError)       a projection store failed
    └── Rejected(SwarmError, ValueError)           the gate refused a write
        ├── SchemaError                            malformed event, wrong schema version
        ├── IdentityError                          writing as someone else
        ├── ChangeError                            invalid or inconsistent Automerge change
        ├── SizeLimitExceeded                      payload over the configured limit
        └── LawViolation                           a safety law rejected the write

Every rejection names the check (``check``) that failed and a human ``reason``.
For law violations ``check`` is the law id. Reasons never echo the offending
content (a detected secret is described by kind and position only).
"""

from __future__ import annotations

__all__ = [
    "ChangeError",
    "ConfigError",
    "ConnectionFailed",
    "Forbidden",
    "IdentityError",
    "LawViolation",
    "NotFound",
    "Rejected",
    "SchemaError",
    "ServerError",
    "SizeLimitExceeded",
    "StoreError",
    "SwarmError",
    "Timeout",
    "rejection_from_wire",
]


class SwarmError(Exception):
    """Base of every error raised by Swarm Memory."""


class ConfigError(SwarmError, ValueError):
    """A setting or command-line option is invalid."""


class ConnectionFailed(SwarmError, ConnectionError):
    """NATS is unreachable, or no Swarm Memory service answers on it."""


class ServerError(SwarmError, RuntimeError):
    """The embedded nats-server could not be found or started."""


class Timeout(SwarmError, TimeoutError):
    """A receipt or read did not arrive within the allowed time."""


class NotFound(SwarmError, LookupError):
    """The memory does not exist, or is not visible to the caller."""


class Forbidden(SwarmError, PermissionError):
    """The caller is not authorised to do this (for example, decide a proposal)."""


class StoreError(SwarmError, RuntimeError):
    """A projection store (DuckDB, LanceDB) failed."""


class Rejected(SwarmError, ValueError):
    """The gate refused a proposed event; it never entered the log.

    ``check`` names the failed check or law, ``reason`` says why in words.
    """

    check: str = "rejected"

    def __init__(self, reason: str, *, check: str | None = None, event_id: str | None = None):
        self.reason = reason
        if check is not None:
            self.check = check
        self.event_id = event_id
        super().__init__(f"rejected by {self.check}: {reason}")


class SchemaError(Rejected):
    """The event is malformed or of an unsupported schema version."""

    check = "schema"


class IdentityError(Rejected):
    """Subject, envelope and Automerge actor disagree: writing as someone else."""

    check = "identity"


class ChangeError(Rejected):
    """The Automerge change is invalid or inconsistent with the event."""

    check = "change"


class SizeLimitExceeded(Rejected):
    """The event is larger than the configured limit."""

    check = "size"


class LawViolation(Rejected):
    """A safety law rejected the event. ``check`` (and ``law``) is the law id."""

    check = "law"

    def __init__(
        self, reason: str, *, law: str, event_id: str | None = None, where: str | None = None
    ):
        self.law = law
        self.where = where
        super().__init__(reason, check=law, event_id=event_id)


_BY_CHECK: dict[str, type[Rejected]] = {
    "schema": SchemaError,
    "identity": IdentityError,
    "change": ChangeError,
    "size": SizeLimitExceeded,
}


def rejection_from_wire(
    check: str, reason: str, *, kind: str, event_id: str | None = None, where: str | None = None
) -> Rejected:
    """Rebuild the typed error a gate verdict describes (``kind`` is "law" or "check")."""
    if kind == "law":
        return LawViolation(reason, law=check, event_id=event_id, where=where)
    cls = _BY_CHECK.get(check, Rejected)
    if cls is Rejected:
        return Rejected(reason, check=check, event_id=event_id)
    return cls(reason, event_id=event_id)
