"""Bytes <-> events. The one place that knows the wire format.

Events travel as UTF-8 JSON (binary Automerge changes in base64). Decoding
runs the upcasters first: small named steps that lift an older
``schema_version`` to the current one, so stored bytes are never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from swarm.errors import SchemaError
from swarm.events import (
    EVENT_TYPES,
    LogRecord,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
    RejectionRecord,
    SystemRecord,
)

__all__ = [
    "UPCASTERS",
    "decode_log_entry",
    "decode_log_record",
    "decode_proposal",
    "decode_rejection",
    "decode_system_record",
    "encode",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: (event type, from schema_version) -> step lifting it to from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

CURRENT_VERSION = 1

Proposal = Annotated[
    MemoryRemembered | MemoryUpdated | MemoryReinforced | MemoryForgotten,
    Field(discriminator="type"),
]
_proposal_adapter: TypeAdapter[Proposal] = TypeAdapter(Proposal)


_system_adapter: TypeAdapter[SystemRecord] = TypeAdapter(SystemRecord)


def encode(model: MemoryEvent | LogRecord | RejectionRecord | SystemRecord) -> bytes:
    return model.model_dump_json().encode()


def _upcast(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("schema_version", 1)
    kind = str(data.get("type"))
    while isinstance(version, int) and version < CURRENT_VERSION:
        step = UPCASTERS.get((kind, version))
        if step is None:
            raise SchemaError(f"no upcaster for {kind} schema_version {version}")
        data = step(data)
        version = data.get("schema_version", version + 1)
    return data


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    # Drop the discriminator tag pydantic puts first ("memory.updated.reason" -> "reason").
    loc = [str(p) for p in first.get("loc", ()) if str(p) not in EVENT_TYPES]
    where = ".".join(loc) or "event"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def decode_proposal(raw: bytes) -> MemoryEvent:
    """Parse a proposed event; SchemaError says exactly what is wrong."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise SchemaError("an event must be a JSON object")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise SchemaError(f"unknown event type {kind!r} (known: {known})")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1 or version > CURRENT_VERSION:
        raise SchemaError(
            f"unsupported schema_version {version!r} for {kind} "
            f"(this gate reads 1..{CURRENT_VERSION})"
        )
    try:
        return _proposal_adapter.validate_python(_upcast(data), by_alias=True)
    except ValidationError as err:
        raise SchemaError(_describe(err)) from None


def decode_log_record(raw: bytes) -> LogRecord:
    try:
        return LogRecord.model_validate_json(raw)
    except ValidationError as err:
        raise SchemaError(f"corrupt log record: {_describe(err)}") from None


def decode_system_record(raw: bytes) -> SystemRecord:
    try:
        return _system_adapter.validate_json(raw)
    except ValidationError as err:
        raise SchemaError(f"corrupt system record: {_describe(err)}") from None


def decode_log_entry(subject: str, raw: bytes) -> LogRecord | SystemRecord:
    """A LOG message: a memory event's record, or a system record (``.sys.`` subjects)."""
    parts = subject.split(".", 3)
    if len(parts) > 2 and parts[2] == "sys":
        return decode_system_record(raw)
    return decode_log_record(raw)


def decode_rejection(raw: bytes) -> RejectionRecord:
    try:
        return RejectionRecord.model_validate_json(raw)
    except ValidationError as err:
        raise SchemaError(f"corrupt rejection record: {_describe(err)}") from None
