"""schemas/ is generated from the models and must not drift."""

from __future__ import annotations

import json
from pathlib import Path

from swarm.schemas import generate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models():
    generated = generate()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.iterdir() if p.is_file()}
    assert sorted(on_disk) == sorted(generated), "run: python -m swarm.schemas"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} is stale: run python -m swarm.schemas"


def test_proposal_schema_names_every_event_type():
    schema = json.loads(generate()["proposal.schema.json"])
    types = {
        d["properties"]["type"]["const"]
        for d in schema["$defs"].values()
        if "type" in d.get("properties", {})
    }
    assert types == {"memory.remembered", "memory.updated", "memory.reinforced", "memory.forgotten"}
