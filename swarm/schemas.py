"""Generate ``schemas/``: JSON Schema of every wire model, and an AsyncAPI map of subjects.

``python -m swarm.schemas`` rewrites the folder; a test regenerates and diffs,
so the files never drift from the models (never edit them by hand).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from swarm.codec import Proposal
from swarm.events import LogRecord, Receipt, RejectionRecord, SystemRecord

__all__ = ["generate", "main"]

_MODELS: dict[str, type[BaseModel]] = {
    "log-record": LogRecord,
    "rejection-record": RejectionRecord,
    "receipt": Receipt,
}


def _asyncapi() -> dict[str, Any]:
    def channel(address: str, description: str, schema: str) -> dict[str, Any]:
        return {
            "address": address,
            "description": description,
            "messages": {"message": {"payload": {"$ref": f"./{schema}.schema.json"}}},
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Swarm Memory subjects",
            "version": "1",
            "description": "NATS subjects of one swarm; {swarm}, {agent}, {instance} and "
            "{memory_id} are subject tokens.",
        },
        "channels": {
            "inbox": channel(
                "swarm.{swarm}.inbox.{agent}.{instance}",
                "Proposals from one agent instance (INBOX stream, work queue). Headers: "
                "Swarm-Reply (subject for the receipt), Swarm-Event-Id, traceparent.",
                "proposal",
            ),
            "log": channel(
                "swarm.{swarm}.log.{agent}.{memory_id}",
                "Accepted events (LOG stream). Written only by the gate. Headers: Nats-Msg-Id "
                "(event id), Swarm-Type, traceparent.",
                "log-record",
            ),
            "sys": channel(
                "swarm.{swarm}.sys.{topic}",
                "System records in the LOG stream, in log order with the memory events: "
                "law.enacted / law.repealed on sys.laws; proposal.opened / proposal.decided "
                "on sys.proposals.{proposal}. Written only by the gate.",
                "system-record",
            ),
            "rejected": channel(
                "swarm.{swarm}.rejected.{agent}",
                "Rejection records, content withheld (REJECTED stream).",
                "rejection-record",
            ),
            "api": {
                "address": "swarm.{swarm}.api.{operation}.{requester}",
                "description": "Read endpoints (request/reply): get, history, recall, status, "
                "rejections, tail, doc. {requester} is the reading agent, or _admin; with "
                "auth on, the server lets an agent publish only requests naming itself and "
                "receive replies only under _SWARM_INBOX.{swarm}.{agent}. "
                'Answers are {"ok": true, "result": ...} or {"ok": false, "error": '
                '{"type", "message"}}.',
            },
        },
    }


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def generate() -> dict[str, str]:
    """File name -> content of every generated schema file."""
    files = {"proposal.schema.json": _dump(TypeAdapter(Proposal).json_schema(mode="validation"))}
    system = TypeAdapter(SystemRecord).json_schema(mode="validation")
    files["system-record.schema.json"] = _dump(system)
    for name, model in _MODELS.items():
        files[f"{name}.schema.json"] = _dump(model.model_json_schema(mode="validation"))
    files["asyncapi.json"] = _dump(_asyncapi())
    return files


def main(argv: list[str] | None = None) -> int:
    target = Path((argv or sys.argv[1:] or ["schemas"])[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (target / name).write_text(text)
    print(f"wrote {len(generate())} files to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
