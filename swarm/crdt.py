"""Memories as Automerge documents, and the changes that edit them.

A memory document is a map at the root::

    id, agent, instance, created_at, private    set once, by the creating change
    content, kind                               registers (concurrent writes: one wins,
                                                the same winner on every replica)
    importance                                  float register
    tags        {tag: token}                    an add-wins set (every add writes a
                                                fresh token, so it beats a concurrent remove)
    recall      {actor_hex: count}              a grow-only counter: each writer
                                                process owns one key, the sum is the count
    forgotten, forgotten_reason                 the tombstone

(The automerge 1.0.0rc1 binding cannot create native ``Counter`` scalars, so
the recall count is the classic G-counter built from a map; concurrent
increments from different writers add up exactly as a counter would.)

Writers (the SDK) author changes with :func:`author`; the gate and the
projections apply them with :meth:`MemoryDoc.apply`. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from automerge.core import ROOT, Document, Message, ObjType, ScalarType, SyncState, Transaction

from swarm.errors import ChangeError

__all__ = [
    "ChangeInfo",
    "MemoryDoc",
    "MemoryState",
    "author",
    "change_chunks",
    "instance_tag",
    "new_actor",
]


def instance_tag(swarm: str, agent: str, instance: str) -> bytes:
    """The first 8 bytes of every actor id an instance uses: binds actor to instance."""
    return hashlib.blake2b(f"{swarm}/{agent}/{instance}".encode(), digest_size=8).digest()


def new_actor(swarm: str, agent: str, instance: str) -> bytes:
    """A fresh 16-byte Automerge actor id for one writer process of an instance.

    Fresh per process (so a restarted process never collides with the
    sequence numbers of its predecessor), yet verifiably tied to its instance.
    """
    return instance_tag(swarm, agent, instance) + os.urandom(8)


@dataclass(frozen=True)
class MemoryState:
    """The plain value of a memory document at some point."""

    id: str
    content: str
    kind: str
    tags: tuple[str, ...]
    importance: float
    recall_count: int
    agent: str
    instance: str
    private: bool
    created_at: str
    forgotten: bool = False
    forgotten_reason: str | None = None
    recall: dict[str, int] = field(default_factory=dict, compare=True)

    def as_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies and was 40% of a projection rebuild.
        return {
            "id": self.id,
            "content": self.content,
            "kind": self.kind,
            "tags": list(self.tags),
            "importance": self.importance,
            "recall_count": self.recall_count,
            "agent": self.agent,
            "instance": self.instance,
            "private": self.private,
            "created_at": self.created_at,
            "forgotten": self.forgotten,
            "forgotten_reason": self.forgotten_reason,
        }

    def text_fields(self) -> dict[str, str | Sequence[str]]:
        """The fields a content law should read."""
        fields: dict[str, str | Sequence[str]] = {
            "content": self.content,
            "kind": self.kind,
            "tags": list(self.tags),
        }
        if self.forgotten_reason:
            fields["forgotten_reason"] = self.forgotten_reason
        return fields


@dataclass(frozen=True)
class ChangeInfo:
    actor: str
    seq: int
    hash: str
    deps: tuple[str, ...]


_MAGIC = bytes([0x85, 0x6F, 0x4A, 0x83])
_CHANGE_CHUNKS = (1, 2)  # a change, a compressed change (0 would be a whole document)


def change_chunks(data: bytes) -> list[int]:
    """The chunk types in Automerge bytes (magic, checksum, type, LEB128 length, body).

    Raises ChangeError if the bytes are not a well-formed sequence of chunks.
    """
    types: list[int] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != _MAGIC or len(data) < pos + 9:
            raise ChangeError("not a valid Automerge change: bad chunk header")
        kind = data[pos + 8]
        pos += 9
        length = shift = 0
        while True:
            if pos >= len(data) or shift > 35:
                raise ChangeError("not a valid Automerge change: bad chunk length")
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += length
        if pos > len(data):
            raise ChangeError("not a valid Automerge change: truncated chunk")
        types.append(kind)
    return types


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _sync_message(change: bytes) -> bytes:
    """An Automerge sync message (type 0x42: no heads, needs or haves) carrying one change."""
    return b"\x42\x00\x00\x00\x01" + _leb128(len(change)) + change


def _new_changes(doc: Document, before: list[bytes]) -> list[ChangeInfo]:
    return [
        ChangeInfo(
            actor=c.actor_id.hex(),
            seq=c.seq,
            hash=c.hash.hex(),
            deps=tuple(sorted(d.hex() for d in c.deps)),
        )
        for c in doc.get_changes(before)
    ]


def _is_panic(err: BaseException) -> bool:
    return type(err).__name__ == "PanicException"


def _load(data: bytes) -> Document:
    try:
        return Document.load(data)
    except Exception as err:
        raise ChangeError(f"not a valid Automerge change: {err}") from None
    except BaseException as err:
        if _is_panic(err):
            raise ChangeError(f"Automerge refused the bytes: {err}") from None
        raise


class MemoryDoc:
    """One memory's Automerge document."""

    __slots__ = ("_doc",)

    def __init__(self, doc: Document | None = None) -> None:
        self._doc = doc if doc is not None else Document()

    @classmethod
    def load(cls, data: bytes) -> MemoryDoc:
        return cls(_load(data))

    def save(self) -> bytes:
        return self._doc.save()

    @property
    def empty(self) -> bool:
        return not self._doc.get_heads()

    def heads(self) -> list[str]:
        return sorted(h.hex() for h in self._doc.get_heads())

    def has_change(self, change_hash: str) -> bool:
        return any(c.hash.hex() == change_hash for c in self._doc.get_changes([]))

    def apply(self, change: bytes, *, strict: bool = True) -> tuple[MemoryDoc, list[ChangeInfo]]:
        """The document with ``change`` applied, and the changes that were new.

        Strict (the gate): changes whose dependencies are not in the document
        are refused. Lenient (projections): they wait inside the document until
        their dependencies arrive. A change already present yields no new
        changes (a retry). Never mutates ``self``.
        """
        before = self._doc.get_heads()
        # fork() also carries changes still waiting for their dependencies.
        fork = self._doc.fork()
        applied = True
        try:
            # O(change), not O(document): a sync message carrying just this change.
            fork.receive_sync_message(SyncState(), Message.decode(_sync_message(change)))
        except Exception:
            applied = False
        except BaseException as err:
            if not _is_panic(err):
                raise
            applied = False
        new = _new_changes(fork, before) if applied else []
        if new:
            return MemoryDoc(fork), new
        # Nothing applied: a retry, a change waiting for its dependencies, or bytes the
        # sync path ignored. Loading save() + change tells them apart exactly.
        base = self._doc.save()
        loaded = _load(base + change)
        new = _new_changes(loaded, before)
        if strict and not new and loaded.save() != base:
            raise ChangeError(
                "the change depends on history this memory does not have "
                "(write from the latest version of the memory)"
            )
        return MemoryDoc(loaded), new

    def state(self) -> MemoryState | None:
        """The memory's value, or None for an empty document.

        Raises ChangeError when fields have the wrong shape (a hand-made change).
        """
        if self.empty:
            return None
        return _read_state(self._doc)

    @property
    def document(self) -> Document:
        return self._doc


def _scalar(doc: Document, key: str, expected: type | tuple[type, ...], default: Any = None) -> Any:
    found = doc.get(ROOT, key)
    if found is None:
        if default is not None:
            return default
        raise ChangeError(f"memory field {key!r} is missing")
    value, _ = found
    if isinstance(value, ObjType):
        raise ChangeError(f"memory field {key!r} must be a plain value, not an object")
    raw = value[1]
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(raw, bool) and bool not in allowed:
        raise ChangeError(f"memory field {key!r} has the wrong type")
    if not isinstance(raw, expected):
        raise ChangeError(f"memory field {key!r} has the wrong type ({type(raw).__name__})")
    return raw


def _map(doc: Document, key: str) -> dict[str, Any]:
    found = doc.get(ROOT, key)
    if found is None:
        return {}
    value, obj = found
    if value != ObjType.Map:
        raise ChangeError(f"memory field {key!r} must be a map")
    out: dict[str, Any] = {}
    for k in doc.keys(obj):
        item = doc.get(obj, k)
        if item is None or isinstance(item[0], ObjType):
            raise ChangeError(f"memory field {key!r} holds a nested object at {k!r}")
        out[k] = item[0][1]
    return out


def _read_state(doc: Document) -> MemoryState:
    recall = _map(doc, "recall")
    for actor, count in recall.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ChangeError(f"recall count of {actor} must be a non-negative integer")
    tags = _map(doc, "tags")
    importance = _scalar(doc, "importance", (float, int))
    forgotten_reason = doc.get(ROOT, "forgotten_reason")
    return MemoryState(
        id=_scalar(doc, "id", str),
        content=_scalar(doc, "content", str),
        kind=_scalar(doc, "kind", str),
        tags=tuple(sorted(tags)),
        importance=float(importance),
        recall_count=sum(recall.values()),
        agent=_scalar(doc, "agent", str),
        instance=_scalar(doc, "instance", str),
        private=_scalar(doc, "private", bool),
        created_at=_scalar(doc, "created_at", str),
        forgotten=bool(_scalar(doc, "forgotten", bool, default=False)),
        forgotten_reason=(
            str(forgotten_reason[0][1])
            if forgotten_reason is not None and not isinstance(forgotten_reason[0], ObjType)
            else None
        ),
        recall=recall,
    )


# -- authoring (the SDK side) ---------------------------------------------------------


def _token() -> str:
    return os.urandom(6).hex()


class Editor:
    """Typed edits inside one Automerge transaction."""

    def __init__(self, tx: Transaction, actor: bytes) -> None:
        self._tx = tx
        self._actor = actor

    def _map_obj(self, key: str) -> bytes:
        found = self._tx.get(ROOT, key)
        if found is None:
            return self._tx.put_object(ROOT, key, ObjType.Map)
        return found[1]

    def create(
        self,
        *,
        memory_id: str,
        content: str,
        kind: str,
        tags: Sequence[str],
        importance: float,
        agent: str,
        instance: str,
        private: bool,
        created_at: str,
    ) -> None:
        tx = self._tx
        tx.put(ROOT, "id", ScalarType.Str, memory_id)
        tx.put(ROOT, "agent", ScalarType.Str, agent)
        tx.put(ROOT, "instance", ScalarType.Str, instance)
        tx.put(ROOT, "created_at", ScalarType.Str, created_at)
        tx.put(ROOT, "private", ScalarType.Boolean, private)
        tx.put(ROOT, "content", ScalarType.Str, content)
        tx.put(ROOT, "kind", ScalarType.Str, kind)
        tx.put(ROOT, "importance", ScalarType.F64, float(importance))
        tx.put(ROOT, "forgotten", ScalarType.Boolean, False)
        tx.put_object(ROOT, "recall", ObjType.Map)
        tag_obj = tx.put_object(ROOT, "tags", ObjType.Map)
        for tag in tags:
            tx.put(tag_obj, tag, ScalarType.Str, _token())

    def set_content(self, content: str) -> None:
        self._tx.put(ROOT, "content", ScalarType.Str, content)

    def set_kind(self, kind: str) -> None:
        self._tx.put(ROOT, "kind", ScalarType.Str, kind)

    def set_importance(self, importance: float) -> None:
        self._tx.put(ROOT, "importance", ScalarType.F64, float(importance))

    def add_tag(self, tag: str) -> None:
        # A fresh value every time: re-adding a tag is a real operation, so it wins
        # over a concurrent removal (add-wins), even if this writer saw the tag already.
        self._tx.put(self._map_obj("tags"), tag, ScalarType.Str, _token())

    def remove_tag(self, tag: str) -> None:
        tags = self._map_obj("tags")
        if self._tx.get(tags, tag) is not None:
            self._tx.delete(tags, tag)

    def reinforce(self) -> None:
        recall = self._map_obj("recall")
        key = self._actor.hex()
        found = self._tx.get(recall, key)
        current = found[0][1] if found is not None and not isinstance(found[0], ObjType) else 0
        count = current if isinstance(current, int) and not isinstance(current, bool) else 0
        self._tx.put(recall, key, ScalarType.Int, count + 1)

    def forget(self, reason: str | None) -> None:
        self._tx.put(ROOT, "forgotten", ScalarType.Boolean, True)
        if reason:
            self._tx.put(ROOT, "forgotten_reason", ScalarType.Str, reason)

    def unforget(self) -> None:
        """Lift the tombstone (only a rollback does: agents may not)."""
        self._tx.put(ROOT, "forgotten", ScalarType.Boolean, False)
        if self._tx.get(ROOT, "forgotten_reason") is not None:
            self._tx.delete(ROOT, "forgotten_reason")


@contextmanager
def author(base: MemoryDoc, actor: bytes) -> Iterator[tuple[Editor, list[bytes]]]:
    """Edit a copy of ``base`` as ``actor``; afterwards the list holds
    ``[change_bytes, saved_doc_bytes]``, or nothing if the edit changed nothing.

    The copy is loaded from bytes and given the actor explicitly, so the
    writer's sequence numbers continue from the changes ``base`` already holds.
    """
    doc = Document.load(base.save()) if not base.empty else Document(actor_id=actor)
    doc.set_actor(actor)
    before = doc.get_heads()
    out: list[bytes] = []
    with doc.transaction() as tx:
        yield Editor(tx, actor), out
    changes = doc.get_changes(before)
    if len(changes) > 1:  # pragma: no cover - one transaction makes at most one change
        raise ChangeError("an edit must produce exactly one change")
    if changes:  # an edit that changes nothing (a tag already there) leaves ``out`` empty
        out.extend([changes[0].bytes, doc.save()])
