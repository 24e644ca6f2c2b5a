"""Test builders shared by the unit tests."""

from __future__ import annotations

from collections.abc import Callable

from automerge.core import Document, Transaction

from swarm.crdt import MemoryDoc


def hand_made(doc: MemoryDoc, actor: bytes, fn: Callable[[Transaction], None]) -> bytes:
    """A change written with raw Automerge calls, bypassing the Editor (as a
    misbehaving client would)."""
    raw = Document.load(doc.save()) if not doc.empty else Document(actor_id=actor)
    raw.set_actor(actor)
    before = raw.get_heads()
    with raw.transaction() as tx:
        fn(tx)
    (change,) = raw.get_changes(before)
    return change.bytes
