"""The keystore: one key per memory, the data subjects it is about, and erasure.

A SQLite file in the data directory (``<data>/keys/<swarm>.db``, mode
600), owned by the service; never in NATS. It runs with ``secure_delete`` on and
a rollback journal (deleted at each commit), so a destroyed key is overwritten
with zeros in the file, not merely unlinked from an index. Tables::

    keys      key_id, key, memory_id (unique), agent, issued_at
    subjects  subject, key_id          the named data subjects a memory is about
    erased    key_id, memory_id, erased_at, record     what was destroyed, by which
                                                       tombstone (no key, no subject)
    copies    path, added_at           replays that hold recall tables to scrub

Several processes may open one keystore (the gate, the projector, a replay):
SQLite serialises the writers. See docs/decisions/0014-crypto-shredding.md.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from swarm.errors import ConfigError, Forbidden, StoreError
from swarm.events import utcnow
from swarm.sealing import SealError, key_id_of, new_key, new_key_id, unseal

__all__ = ["KeyEntry", "Keystore", "Revealed", "normalise_subject"]

Revealed = Literal["plain", "open", "erased", "sealed"]
#: What a reader shows for content it cannot open.
HIDDEN = ""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS keys (
        key_id TEXT PRIMARY KEY, key BLOB NOT NULL, memory_id TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL, issued_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS subjects (
        subject TEXT NOT NULL, key_id TEXT NOT NULL, PRIMARY KEY (subject, key_id))""",
    "CREATE INDEX IF NOT EXISTS subjects_by_key ON subjects (key_id)",
    """CREATE TABLE IF NOT EXISTS erased (
        key_id TEXT PRIMARY KEY, memory_id TEXT NOT NULL, erased_at TEXT NOT NULL,
        record TEXT)""",
    "CREATE INDEX IF NOT EXISTS erased_by_memory ON erased (memory_id)",
    "CREATE TABLE IF NOT EXISTS copies (path TEXT PRIMARY KEY, added_at TEXT NOT NULL)",
)


def normalise_subject(name: str) -> str:
    """A data subject's name as the keystore files it: trimmed, case-folded, single spaces."""
    subject = re.sub(r"\s+", " ", name).strip().casefold()
    if not subject or len(subject) > 200:
        raise ConfigError("a data subject's name must be 1-200 characters")
    return subject


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    key: bytes
    memory_id: str
    agent: str

    def wire(self) -> dict[str, str]:
        """What the writer gets: the id and the key (base64), for sealing its content."""
        return {"key_id": self.key_id, "key": base64.b64encode(self.key).decode()}


class Keystore:
    """Keys of one swarm's memories (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30.0, isolation_level=None
            )
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("PRAGMA journal_mode = DELETE")
            self._db.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the keystore {self.path}: {err}") from None
        self._lock = threading.Lock()
        self._keys: dict[str, KeyEntry] = {}
        self._erased: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                raise StoreError(f"keystore {self.path}: {err}") from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise StoreError(f"keystore {self.path}: {err}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._keys.clear()

    def __enter__(self) -> Keystore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- issuing --------------------------------------------------------------------------

    def issue(
        self, memory_ids: Sequence[str], *, agent: str, about: Iterable[str] = ()
    ) -> list[KeyEntry]:
        """A key for each new memory of ``agent`` (an existing key again: a retry, or a
        memory that exists, whose creation the gate then refuses), filed under the data
        subjects ``about``. Forbidden: the memory was erased."""
        subjects = sorted({normalise_subject(s) for s in about})
        out: list[KeyEntry] = []
        with self._tx() as db:
            for mid in memory_ids:
                row = db.execute(
                    "SELECT key_id, key, agent FROM keys WHERE memory_id = ?", (mid,)
                ).fetchone()
                if row is not None:  # a retry, or an existing memory (the gate decides)
                    entry = KeyEntry(row[0], bytes(row[1]), mid, str(row[2]))
                    if entry.agent != agent:
                        out.append(entry)
                        continue  # only its writer files it under subjects
                else:
                    if db.execute("SELECT 1 FROM erased WHERE memory_id = ?", (mid,)).fetchone():
                        raise Forbidden(f"memory {mid} was erased; its id cannot be reused")
                    entry = KeyEntry(new_key_id(), new_key(), mid, agent)
                    db.execute(
                        "INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
                        (entry.key_id, entry.key, mid, agent, utcnow().isoformat()),
                    )
                db.executemany(
                    "INSERT OR IGNORE INTO subjects VALUES (?, ?)",
                    [(s, entry.key_id) for s in subjects],
                )
                out.append(entry)
        for entry in out:
            self._keys[entry.key_id] = entry
        return out

    # -- looking up -----------------------------------------------------------------------

    def lookup(self, key_id: str) -> KeyEntry | None:
        """The key with this id, or None (never issued here, or destroyed)."""
        entry = self._keys.get(key_id)
        if entry is not None:
            return entry
        rows = self._query("SELECT key, memory_id, agent FROM keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        entry = KeyEntry(key_id, bytes(rows[0][0]), str(rows[0][1]), str(rows[0][2]))
        self._keys[key_id] = entry
        return entry

    def key_for(self, memory_id: str) -> KeyEntry | None:
        rows = self._query("SELECT key_id FROM keys WHERE memory_id = ?", (memory_id,))
        return self.lookup(str(rows[0][0])) if rows else None

    def is_erased(self, key_id: str) -> bool:
        if key_id in self._erased:
            return True
        if self._query("SELECT 1 FROM erased WHERE key_id = ?", (key_id,)):
            self._erased.add(key_id)
            self._keys.pop(key_id, None)
            return True
        return False

    def memory_erased(self, memory_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM erased WHERE memory_id = ?", (memory_id,)))

    def memories_about(self, subject: str) -> list[str]:
        """The memories filed under a data subject (live keys only)."""
        rows = self._query(
            "SELECT k.memory_id FROM subjects s JOIN keys k USING (key_id) "
            "WHERE s.subject = ? ORDER BY k.memory_id",
            (normalise_subject(subject),),
        )
        return [str(r[0]) for r in rows]

    # -- reading sealed content -----------------------------------------------------------

    def open(self, content: str, memory_id: str) -> str:
        """The text of ``content`` (plain text as it is). SealError: cannot be opened."""
        key_id = key_id_of(content)
        if key_id is None:
            return content
        entry = self.lookup(key_id)
        if entry is None:
            if self.is_erased(key_id):
                raise SealError(f"memory {memory_id} was erased: it cannot change")
            raise SealError(
                f"content is sealed with key {key_id}, which this service did not issue"
            )
        if entry.memory_id != memory_id:
            raise SealError(f"key {key_id} was issued for another memory")
        return unseal(content, key=entry.key, memory_id=memory_id)

    def reveal(self, content: str, memory_id: str) -> tuple[str, Revealed]:
        """For readers: the text and how it was found; never raises for sealed content."""
        key_id = key_id_of_or_none(content)
        if key_id is None:
            return content, "plain"
        try:
            return self.open(content, memory_id), "open"
        except SealError:
            return HIDDEN, "erased" if self.is_erased(key_id) else "sealed"

    def reveal_row(self, row: Mapping[str, Any], id_key: str = "id") -> dict[str, Any]:
        """A memory row with its content opened, and ``erased`` (and ``sealed``: a key
        this keystore does not hold) set."""
        out = dict(row)
        text, how = self.reveal(str(out.get("content") or ""), str(out[id_key]))
        out["content"] = text
        out["erased"] = how == "erased"
        if how == "sealed":
            out["sealed"] = True
        return out

    # -- erasing --------------------------------------------------------------------------

    def destroy(
        self, memory_ids: Iterable[str], *, record: str, subject: str | None = None
    ) -> list[str]:
        """Destroy the keys of these memories (and file ``subject`` nowhere any more);
        returns the key ids destroyed now. Idempotent: a destroyed key stays destroyed."""
        destroyed: list[str] = []
        memory_ids = list(memory_ids)
        when = utcnow().isoformat()
        with self._tx() as db:
            for mid in memory_ids:
                for (key_id,) in db.execute(
                    "SELECT key_id FROM keys WHERE memory_id = ?", (mid,)
                ).fetchall():
                    db.execute(
                        "INSERT OR IGNORE INTO erased VALUES (?, ?, ?, ?)",
                        (key_id, mid, when, record),
                    )
                    db.execute("DELETE FROM subjects WHERE key_id = ?", (key_id,))
                    db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
                    destroyed.append(str(key_id))
            if subject is not None:
                db.execute("DELETE FROM subjects WHERE subject = ?", (normalise_subject(subject),))
            # Another process may have destroyed them first: forget what this one cached.
            gone = [
                str(r[0])
                for mid in set(memory_ids)
                for r in db.execute("SELECT key_id FROM erased WHERE memory_id = ?", (mid,))
            ]
        for key_id in gone:
            self._keys.pop(key_id, None)
            self._erased.add(key_id)
        return destroyed

    # -- copies that hold plain text --------------------------------------------------------

    def register_copy(self, path: str | Path) -> None:
        """A replay directory whose recall tables an erasure must scrub too."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO copies VALUES (?, ?)",
                (str(Path(path).resolve()), utcnow().isoformat()),
            )

    def copies(self) -> list[Path]:
        return [Path(r[0]) for r in self._query("SELECT path FROM copies ORDER BY path")]


def key_id_of_or_none(content: str) -> str | None:
    try:
        return key_id_of(content)
    except SealError:
        return None
