"""The log's hash chain: each entry names the hash of the one before it.

Every entry of the LOG stream (a memory event's record or a system record) carries
``seq``, the sequence it was written at, and ``prev``, the sha256 of the previous
entry's stored bytes. Altering, removing or
reordering any entry breaks the link after it, which ``swarm audit --verify``
finds (see :mod:`swarm.audit`). The gate, the only writer, appends each entry with
JetStream's expected-last-sequence check, so an entry lands only right after the
one it names: a failed or lost append can never leave a broken link behind.

Pure: the gate does the I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from swarm.codec import encode
from swarm.events import LogRecord, SystemRecord

__all__ = ["Head", "digest", "link"]

R = TypeVar("R", LogRecord, SystemRecord)


def digest(data: bytes) -> str:
    """The hash an entry's successor names as its ``prev``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Head:
    """The log's last entry: its sequence and hash (``seq`` 0, ``hash`` None: empty)."""

    seq: int = 0
    hash: str | None = None


def link(
    records: Sequence[LogRecord | SystemRecord], head: Head
) -> tuple[list[bytes], list[int], Head]:
    """Chain ``records`` after ``head``: their bytes (``prev`` set), the last sequence each
    must find in the stream to be appended, and the head once all of them are in."""
    out: list[bytes] = []
    expected: list[int] = []
    prev, seq = head.hash, head.seq
    for record in records:
        data = encode(record.model_copy(update={"prev": prev, "seq": seq + 1}))
        out.append(data)
        expected.append(seq)
        prev, seq = digest(data), seq + 1
    return out, expected, Head(seq, prev)
