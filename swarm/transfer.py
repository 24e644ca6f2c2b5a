"""Moving bundles (see :mod:`swarm.bundle`) out of a swarm and into one, through a client.

:func:`export_bundle` reads an agent's memories (as the client may see them) and
the laws in force, and writes a bundle. :func:`import_bundle` writes a bundle's
memories as ordinary ``remember`` events of the client's agent, so the gate
checks each one like any write; a refused one is reported and the rest go on.

Each imported memory gets an id derived from the bundle's agent and its original
id (:func:`imported_id`), so importing a bundle again writes nothing new: the gate
answers "already exists" for each memory already there. The client is anything
with the SDK's methods (:class:`Reader`, :class:`Writer`), so this module needs
no NATS and is tested against an in-memory twin.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from swarm.bundle import Bundle, MemoryRecord, render_soul, write_bundle
from swarm.errors import ChangeError, Rejected
from swarm.events import Receipt, utcnow

__all__ = [
    "ImportItem",
    "ImportReport",
    "Reader",
    "Writer",
    "export_bundle",
    "import_bundle",
    "import_plan",
    "imported_id",
]

#: Writes an import keeps in flight at once, and tries of a write the rate limit refuses.
IMPORT_CONCURRENCY = 16
RATE_RETRIES = 6


# -- import -----------------------------------------------------------------------------------


def imported_id(agent: str, memory_id: str) -> str:
    """The id a memory of ``agent`` gets when imported: the same in every swarm and on
    every run, so a repeated import finds it already there (32 hex digits)."""
    return hashlib.sha256(f"{agent}\x00{memory_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ImportItem:
    """One write of an import: remember ``record`` as ``id``, then forget it if ``forget``."""

    id: str
    record: MemoryRecord

    @property
    def forget(self) -> bool:
        return self.record.forgotten

    def as_dict(self) -> dict[str, Any]:
        m = self.record
        return {
            "id": self.id,
            "source_id": m.id,
            "content": m.content,
            "kind": m.kind,
            "tags": list(m.tags),
            "importance": m.importance,
            "private": m.private,
            "forget": m.forgotten,
        }


def import_plan(bundle: Bundle, *, include_forgotten: bool = False) -> tuple[list[ImportItem], int]:
    """The writes an import makes, in log order, and how many forgotten memories it
    leaves out (all of them unless ``include_forgotten``)."""
    kept = [m for m in bundle.memories if include_forgotten or not m.forgotten]
    items = [ImportItem(imported_id(bundle.agent, m.id), m) for m in kept]
    return items, len(bundle.memories) - len(kept)


@dataclass
class ImportReport:
    """What an import did. ``rejected``: ``{"id", "memory_id", "check", "reason"}``
    (``id`` is the bundle's); ``pending``: writes a law holds for approval."""

    imported: int = 0
    skipped: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    pending: list[dict[str, str]] = field(default_factory=list)
    left_out: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "pending": self.pending,
            "left_out": self.left_out,
        }


class Writer(Protocol):
    """What an import needs of a client (:class:`swarm.client.SwarmClient` has it)."""

    async def remember(
        self,
        content: str,
        *,
        kind: str = ...,
        tags: Sequence[str] = ...,
        importance: float = ...,
        private: bool = ...,
        memory_id: str | None = ...,
    ) -> Receipt: ...

    async def forget(self, memory_id: str, *, reason: str | None = ...) -> Receipt: ...


def _exists(err: Rejected) -> bool:
    return isinstance(err, ChangeError) and "already exists" in err.reason


def _forgotten_already(err: Rejected) -> bool:
    return isinstance(err, ChangeError) and "is forgotten" in err.reason


async def _paced(write: Callable[[], Awaitable[Receipt]]) -> Receipt:
    """``write()``, again after a pause while the gate's rate limit refuses it."""
    for attempt in range(RATE_RETRIES):
        try:
            return await write()
        except Rejected as err:
            if err.check != "rate" or attempt == RATE_RETRIES - 1:
                raise
            await asyncio.sleep(0.25 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def _import_one(writer: Writer, item: ImportItem) -> tuple[str, dict[str, str]]:
    """Write one item: ("imported" | "skipped" | "pending" | "rejected", details)."""
    m = item.record
    about = {"id": m.id, "memory_id": item.id}
    try:
        receipt = await _paced(
            lambda: writer.remember(
                m.content,
                kind=m.kind,
                tags=m.tags,
                importance=m.importance,
                private=m.private,
                memory_id=item.id,
            )
        )
    except Rejected as err:
        if not _exists(err):
            return "rejected", {**about, "check": err.check, "reason": err.reason}
        outcome = "skipped"
    else:
        if receipt.status == "pending":
            return "pending", {**about, "proposal": str(receipt.proposal)}
        outcome = "imported"
    if item.forget:  # also when it was already there: an earlier run may have stopped here
        try:
            receipt = await _paced(lambda: writer.forget(item.id, reason=m.forgotten_reason))
        except Rejected as err:
            if not _forgotten_already(err):
                return "rejected", {**about, "check": err.check, "reason": err.reason}
        else:
            if receipt.status == "pending":
                return "pending", {**about, "proposal": str(receipt.proposal)}
    return outcome, about


async def import_bundle(
    writer: Writer,
    bundle: Bundle,
    *,
    include_forgotten: bool = False,
    concurrency: int = IMPORT_CONCURRENCY,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Write the bundle's memories as ``writer``'s own, through the gate like any write.

    A write the gate refuses is reported and the rest go on; a memory already
    imported (by an earlier run) is skipped. Forgotten memories stay out, unless
    ``include_forgotten``: then they are remembered and forgotten again.
    ``progress(done, total)`` is called after each memory. Errors other than a
    refusal (the service gone, a timeout) stop the import: run it again, it
    resumes where it stopped.
    """
    items, left_out = import_plan(bundle, include_forgotten=include_forgotten)
    results: list[tuple[str, dict[str, str]] | None] = [None] * len(items)
    queue = iter(enumerate(items))
    done = 0

    async def work() -> None:
        nonlocal done
        for index, item in queue:
            results[index] = await _import_one(writer, item)
            done += 1
            if progress is not None:
                progress(done, len(items))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, len(items)))):
                group.create_task(work())
    except ExceptionGroup as errors:  # the first failure, as the caller would expect it
        raise errors.exceptions[0] from None
    report = ImportReport(left_out=left_out)
    for result in results:
        assert result is not None  # every task finished, or the TaskGroup raised
        outcome, details = result
        if outcome == "imported":
            report.imported += 1
        elif outcome == "skipped":
            report.skipped += 1
        elif outcome == "pending":
            report.pending.append(details)
        else:
            report.rejected.append(details)
    return report


# -- export -----------------------------------------------------------------------------------


class Reader(Protocol):
    """What an export needs of a client (:class:`swarm.client.SwarmClient` has it)."""

    def memories(
        self, *, agent: str | None = ..., forgotten: bool = ..., after: int | None = ...
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def laws(self) -> dict[str, Any]: ...


async def export_bundle(
    reader: Reader,
    directory: str | Path,
    agent: str,
    *,
    swarm: str | None = None,
    requester: str | None = None,
    include_forgotten: bool = False,
    soul: str | bytes | None = None,
    after: int | None = None,
) -> tuple[Bundle, list[Path]]:
    """Write ``agent``'s memories, as ``reader`` may see them, as a bundle in
    ``directory`` (``after``: once the views have applied that log sequence).
    ``soul``: the agent's own SOUL.md, carried over unchanged; without it one is
    written from the laws in force for the agent. Returns the bundle and its files."""
    memories = reader.memories(agent=agent, forgotten=include_forgotten, after=after)
    rows = [row async for row in memories if not row.get("erased")]  # nothing left to carry
    bundle = Bundle.of(
        agent,
        rows,
        swarm=swarm,
        exported_at=utcnow().isoformat(),
        exported_by=requester,
        include_forgotten=include_forgotten,
    )
    if soul is None:
        soul = render_soul(agent, await reader.laws(), swarm=swarm, exported_at=bundle.exported_at)
    return bundle, write_bundle(directory, bundle, soul=soul)
