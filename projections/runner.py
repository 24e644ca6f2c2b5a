"""The projector: folds the log into DuckDB and LanceDB, checkpointed.

Each micro-batch (up to ``batch`` messages, whatever has arrived) is folded,
written to DuckDB in one transaction *together with the checkpoint*, then the
recall rows go to LanceDB and only then is the log acknowledged (AckAll on the
last message). After a crash the projector resumes at checkpoint + 1, so an
event is neither lost nor applied twice; LanceDB, written after the commit, is
re-fed from DuckDB rows newer than its own marker (``recall`` checkpoint).

Restarts read CRDT state from the ``crdt_docs`` snapshots, not a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import structlog
from nats.aio.msg import Msg
from opentelemetry.trace import SpanContext, SpanKind

from projections import parallel
from projections.duckdb_store import DuckStore, ProjectionBatch
from projections.lance import LanceRecall
from projections.reducers import Folded, Projected, fold, recall_row, unreadable_row
from projections.snapshots import (
    RECALL_CHUNK,
    RecallSnapshots,
    fill_recall,
    scrub_copy,
)
from swarm import metrics, telemetry
from swarm.api import wait_until
from swarm.auth import ADMIN
from swarm.codec import decode_log_entry
from swarm.crdt import MemoryDoc
from swarm.diff import annotate
from swarm.errors import NotFound, SchemaError, StoreError, SwarmError
from swarm.events import LogRecord, MemoryErased, SystemRecord
from swarm.jetstream import Closed, JetStreamLog, StoredMessage
from swarm.keystore import Keystore

__all__ = ["ProjectionAhead", "Projector", "visible"]

log = structlog.get_logger(__name__)

RECALL_CHECKPOINT = "recall"
#: Longest a staged (readable) batch waits for its DuckDB commit: under load,
#: batches fetched within this window share one transaction.
COMMIT_EVERY = 0.05


class ProjectionAhead(StoreError):
    """The projection holds events the log no longer has."""


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    """A folded memories row in the shape DuckStore.get_memory returns."""
    return {
        k: (v.isoformat() if isinstance(v, datetime) else list(v) if k == "tags" else v)
        for k, v in row.items()
    }


def visible(row: dict[str, Any] | None, requester: str | None) -> dict[str, Any] | None:
    """A memory row as ``requester`` may see it: a private memory only for its agent
    (and ``_admin``); None when it may not."""
    if row is None or (row["private"] and requester not in (row["agent"], ADMIN)):
        return None
    return dict(row)


class Projector:
    """Keeps the projections up to date and answers reads from them."""

    def __init__(
        self,
        log: JetStreamLog | None,
        store: DuckStore,
        recall: LanceRecall,
        *,
        batch: int = 1000,
        cache_size: int = 100_000,
        durable: str = "projector",
        snapshots: RecallSnapshots | None = None,
        keys: Keystore | None = None,
        scrub_copies: bool = False,
    ) -> None:
        self.log = log
        self.store = store
        #: Opens sealed content for readers and LanceDB; DuckDB keeps it sealed.
        self.keys = keys
        store.reveal = keys.reveal_row if keys is not None else None
        #: On an erasure, also scrub the replays registered in the keystore (the service).
        self.scrub_copies = scrub_copies
        #: Held while rows are opened and written to LanceDB, and by an erasure: a
        #: commit's catch-up running beside the next batch's erasure (two threads) must
        #: not write rows it opened before the keys were destroyed after the scrub.
        self._recall_lock = threading.RLock()
        self.recall_store = recall
        self.batch = batch
        self.durable = durable
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Projected] = OrderedDict()
        self._projected = store.checkpoint()  # committed to DuckDB (and LanceDB)
        self._visible = self._projected  # readable: folded, in LanceDB, maybe not yet committed
        self._recent: dict[str, dict[str, Any]] = {}
        self._recent_lock = threading.Lock()
        self._readers = threading.Condition()
        self._reading: Counter[int] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Condition()
        self._recall_marker = self._recall_start()  # LanceDB holds everything up to here
        self._recall_base = self._recall_marker  # LanceDB holds rows up to here (maybe uncommitted)
        self._pending: list[Folded] = []
        self._staged_seq = 0
        self._marker_saved_at = 0.0
        #: Rebuilding: no reader to serve, so LanceDB is filled once at the end (rebuild).
        self._defer_recall = False
        self._snapshots = snapshots
        self.swarm = log.subjects.swarm if log is not None else None
        self.batches = 0

    @property
    def projected_seq(self) -> int:
        """The last sequence committed to DuckDB (and LanceDB)."""
        return self._projected

    @property
    def visible_seq(self) -> int:
        """The last sequence readers can see (folded; maybe still committing)."""
        return self._visible

    # -- applying -------------------------------------------------------------------------

    def _known(self, memory_ids: set[str]) -> dict[str, Projected]:
        known = {mid: self._cache[mid] for mid in memory_ids if mid in self._cache}
        missing = [mid for mid in memory_ids if mid not in known]
        if missing:
            for mid, (doc, version) in self.store.load_docs_with_version(missing).items():
                known[mid] = Projected(MemoryDoc.load(doc), version)
        return known

    def apply(self, messages: Sequence[StoredMessage]) -> Folded | None:
        """Stage and commit one batch (blocking: runs in a worker thread)."""
        folded = self.stage(messages)
        self.commit()
        return folded

    def stage(self, messages: Sequence[StoredMessage]) -> Folded | None:
        """Fold a batch, write LanceDB and make it readable; DuckDB waits for commit().

        From the fold on, the batch's rows are determined: the log already holds
        these events, and a retry folds them to the same rows. So readers may see
        them before DuckDB commits: `get` from ``_recent``, recall from LanceDB.
        """
        high = max(self.store.checkpoint(), self._staged_seq)
        records: list[tuple[int, LogRecord | SystemRecord, str | None]] = []
        unreadable: list[int] = []
        for msg in messages:
            if msg.seq <= high:
                continue  # already staged or committed: replay is safe
            tp = msg.headers.get("traceparent")
            try:
                record = decode_log_entry(msg.subject, msg.data)
            except SchemaError as err:  # written around the gate: keep going, audit names it
                log.error("unreadable_log_entry", seq=msg.seq, error=str(err))
                unreadable.append(msg.seq)
                continue
            records.append((msg.seq, record, tp.split("-")[1] if tp else None))
        if not records and not unreadable:
            return None
        touched = {r.event.memory_id for _, r, _ in records if isinstance(r, LogRecord)}
        folded = fold(records, self._known(touched))
        for _, record, _ in records:  # first: no plain text of them is written from here on
            if isinstance(record, MemoryErased):
                self._erase(record)
        folded.records = [{"seq": m.seq, "record": m.data} for m in messages if m.seq > high]
        folded.events.extend(unreadable_row(seq) for seq in unreadable)
        folded.last_seq = max(folded.last_seq, *unreadable, 0)
        for mid, projected in folded.touched.items():
            self._cache[mid] = projected
            self._cache.move_to_end(mid)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        # Opened once, for readers and for LanceDB (a rebuild does neither here).
        opened = (
            {}
            if self._defer_recall
            else {mid: self._reveal(_readable(row)) for mid, row in folded.memories.items()}
        )
        if not self._defer_recall:
            with self._recent_lock:
                self._recent.update(opened)
        self._pending.append(folded)
        self._staged_seq = folded.last_seq
        if self._defer_recall:
            return folded
        # LanceDB upserts are idempotent and never lower a row's seq, so if the DuckDB
        # commit fails the rows are simply written again when the batch is retried.
        if self._recall_base >= high:  # LanceDB holds everything before this batch
            with (
                self._recall_lock,
                telemetry.store_write("lancedb", self.swarm, rows=len(folded.memories)),
            ):
                self.recall_store.upsert([recall_row(m) for m in opened.values()])
            self._recall_base = folded.last_seq
            self._signal_visible(folded.last_seq)
            # DuckDB holds the GIL through its statements; readers already waiting for
            # this batch go first (bounded), so read-your-writes is not queued behind it.
            self._let_readers_finish(folded.last_seq)
        return folded

    def _reveal(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.keys.reveal_row(row) if self.keys is not None else row

    def _erase(self, record: MemoryErased) -> None:
        """Apply an erasure's tombstone: destroy the keys (again: idempotent), and remove
        the plain text this projection derived from them (LanceDB rows rewritten away,
        recall snapshots dropped; with ``scrub_copies`` the registered replays too)."""
        with self._recall_lock:
            self._erase_locked(record)

    def _erase_locked(self, record: MemoryErased) -> None:
        ids = list(record.memories)
        if self.keys is not None:
            self.keys.destroy(ids, record=record.id)
        with self._recent_lock:
            for mid in ids:
                self._recent.pop(mid, None)
        if not self._defer_recall:  # a rebuild fills LanceDB at its end, revealed
            self.recall_store.scrub(ids)
        self.snapshots.drop_all()
        if self.scrub_copies and self.keys is not None and self.swarm is not None:
            for path in self.keys.copies():
                scrub_copy(path, self.swarm, ids, self.recall_store.embedder)
        log.info("erasure_applied", record=record.id, memories=len(ids))

    def erase_plan_now(
        self, memory_ids: Sequence[str], *, about: str | None, mentions: bool
    ) -> dict[str, Any]:
        """What an erasure would cover: the memories named, those filed under the data
        subject ``about``, and (``mentions``) those whose text, in any version, names it."""
        found: dict[str, str] = {}
        for mid in memory_ids:
            if self.store.get_memory(mid) is None:
                raise NotFound(f"no memory {mid}")
            found.setdefault(mid, "named")
        if about is not None:
            if self.keys is None:
                raise SwarmError("this projection has no keystore: it cannot find a subject")
            for mid in self.keys.memories_about(about):
                found.setdefault(mid, "about")
            if mentions:
                for mid in self.store.memories_mentioning(about):
                    found.setdefault(mid, "mentions")
        rows = []
        for mid, why in found.items():
            row = self.store.get_memory(mid) or {}
            rows.append(
                {
                    "id": mid,
                    "why": why,
                    "agent": row.get("agent"),
                    "kind": row.get("kind"),
                    "erased": bool(row.get("erased")),
                }
            )
        return {"memories": rows, "mentions_searched": about is not None and mentions}

    @property
    def pending_events(self) -> int:
        return sum(len(f.events) for f in self._pending)

    def commit(self) -> int:
        """Write every staged batch to DuckDB in one transaction, with the checkpoint."""
        if not self._pending:
            return self.store.checkpoint()
        # Taken at once: a rebuild stages the next batch while this one commits.
        pending, self._pending = self._pending, []
        last = pending[-1]
        memories: dict[str, dict[str, Any]] = {}
        docs: dict[str, dict[str, Any]] = {}
        for folded in pending:
            memories.update(folded.memories)
            for mid, row in folded.docs.items():
                docs[mid] = {**row, "version": folded.touched[mid].version}
        try:
            self.store.apply(
                ProjectionBatch(
                    last_seq=last.last_seq,
                    events=[e for f in pending for e in f.events],
                    memories=list(memories.values()),
                    versions=[v for f in pending for v in f.versions],
                    docs=list(docs.values()),
                    records=[r for f in pending for r in f.records],
                )
            )
        except BaseException:
            self._pending = pending + self._pending  # still staged: a retry commits them
            raise
        if self._defer_recall:
            return last.last_seq
        with self._recent_lock:
            for mid in [m for m, row in self._recent.items() if row["seq"] <= last.last_seq]:
                del self._recent[mid]
        if self._recall_base == last.last_seq:
            self._recall_marker = self._recall_base = last.last_seq
            self._persist_recall_marker(force=False)
        else:
            self.catch_up_recall()
        return last.last_seq

    def discard_staged(self) -> None:
        """Forget staged batches (after a failed commit: they are refetched from the log)."""
        self._pending = []
        self._staged_seq = 0
        self._cache.clear()
        self._recall_base = self._recall_marker = self._recall_start()

    @contextlib.contextmanager
    def read_after(self, seq: int) -> Iterator[None]:
        """Mark a read that waits for ``seq`` as in progress (see _let_readers_finish)."""
        with self._readers:
            self._reading[seq] += 1
        try:
            yield
        finally:
            with self._readers:
                self._reading[seq] -= 1
                if not self._reading[seq]:
                    del self._reading[seq]
                self._readers.notify_all()

    def _let_readers_finish(self, seq: int, limit: float = 0.05) -> None:
        deadline = time.monotonic() + limit
        with self._readers:
            while any(s <= seq for s in self._reading):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._readers.wait(remaining)

    def _signal_visible(self, seq: int) -> None:
        """From a worker thread: readers waiting for ``seq`` may go (see stage)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self._notify(seq, durable=False)))

    def _persist_recall_marker(self, *, force: bool) -> None:
        """Store LanceDB's marker at most once a second (a crash re-feeds a little more)."""
        now = time.monotonic()
        if force or now - self._marker_saved_at >= 1.0:
            self.store.set_checkpoint(RECALL_CHECKPOINT, self._recall_marker)
            self._marker_saved_at = now

    def _recall_start(self) -> int:
        """Where LanceDB's feed resumes: its marker, unless LanceDB holds less (a
        deleted or older recall directory is refilled from DuckDB, no log replay)."""
        return min(self.store.checkpoint(RECALL_CHECKPOINT), self.recall_store.max_seq())

    def catch_up_recall(self) -> int:
        """Feed LanceDB every memory row newer than its marker. Returns rows fed."""
        with self._recall_lock:  # rows opened before an erasure must not land after it
            return self._catch_up_recall()

    def _catch_up_recall(self) -> int:
        marker = self._recall_start()
        target = self.store.checkpoint()

        def chunks() -> Iterator[list[dict[str, Any]]]:
            while marker < target and (
                rows := self.store.memories_since(marker, limit=RECALL_CHUNK)
            ):
                yield rows

        def mark(seq: int) -> None:
            nonlocal marker
            marker = seq
            self.store.set_checkpoint(RECALL_CHECKPOINT, seq)

        # The same fill as a recall snapshot's (projections.snapshots): equal rows in
        # equal chunks, so recall on a rebuild to S equals recall as of S.
        fed = fill_recall(self.recall_store, chunks(), mark)
        if marker < target:
            self.store.set_checkpoint(RECALL_CHECKPOINT, target)
        self._recall_marker = self._recall_base = max(marker, target)
        return fed

    def close(self) -> None:
        """Persist the recall marker and close both stores."""
        with contextlib.suppress(Exception):
            self._persist_recall_marker(force=True)
        if self._snapshots is not None:
            self._snapshots.close()
        self.recall_store.close()
        self.store.close()

    async def _notify(self, seq: int, *, durable: bool = True) -> None:
        async with self._changed:
            self._visible = max(self._visible, seq)
            if durable:
                self._projected = max(self._projected, seq)
            self._changed.notify_all()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self.log is None:
            raise SwarmError("this projector has no log to follow")
        self._loop = asyncio.get_running_loop()
        await self.check_against_log()
        fed = await asyncio.to_thread(self.catch_up_recall)
        if fed:
            log.info("recall_caught_up", rows=fed)
        while not stop.is_set():
            try:
                await self._follow(stop)
            except Closed:
                return
            except ProjectionAhead:
                raise
            except SwarmError as err:
                log.error("projector_retry", error=str(err))
                self._cache.clear()
                await asyncio.sleep(1.0)

    async def check_against_log(self) -> None:
        """Refuse to follow a log that no longer holds what this projection applied.

        With a relaxed ``sync_interval`` a power failure can drop the log's last
        acknowledged events after the projection committed them; new events would
        then reuse those sequence numbers and be skipped. Detect it: the checkpoint
        must not be past the log's end, and the event at the checkpoint must match.
        """
        assert self.log is not None
        checkpoint = self.store.checkpoint()
        if checkpoint == 0:
            return
        last = await self.log.last_seq()
        mine = await asyncio.to_thread(self.store.events_since, checkpoint - 1, 1)
        theirs = await self.log.event_id_at(checkpoint) if checkpoint <= last else None
        if checkpoint > last or (mine and theirs is not None and mine[0]["event_id"] != theirs):
            raise ProjectionAhead(
                f"the projection has applied seq {checkpoint} but the log "
                + (f"ends at {last}" if checkpoint > last else "holds another event there")
                + ": the log lost acknowledged events (a power failure with a relaxed "
                "sync_interval?). Stop the service, delete this swarm's projection directory "
                "(<data>/swarms/<name>/) and start again to rebuild it from the log."
            )

    async def _follow(self, stop: asyncio.Event) -> None:
        assert self.log is not None
        s = self.log.subjects
        sub = await self.log.durable_pull(
            stream=s.log_stream,
            durable=self.durable,
            filter_subject=None,  # the whole log: memory events and system records
            start_seq=self.store.checkpoint() + 1,
            ack_all=True,
            fresh=True,
        )
        log.info("projector_started", swarm=s.swarm, from_seq=self.store.checkpoint() + 1)
        last_msg = None
        staged_since = 0.0
        traced: list[SpanContext] = []  # the staged batches' spans, for the commit's
        try:
            while not stop.is_set():
                wait = (
                    0.5
                    if last_msg is None
                    else max(0.0, COMMIT_EVERY - (time.monotonic() - staged_since))
                )
                msgs = await self.log.fetch(sub, self.batch, max(wait, 0.001))
                if msgs:
                    first = msgs[0].metadata.sequence.stream
                    expected = max(self._projected, self._staged_seq) + 1
                    if first > expected:
                        # The log has no gaps (deletes are denied): a gap means a late
                        # redelivery or a lost message. Start over from the checkpoint.
                        raise SwarmError(f"log gap: expected seq {expected}, got {first}")
                    stored = [
                        StoredMessage(
                            seq=m.metadata.sequence.stream,
                            subject=m.subject,
                            data=m.data,
                            headers=dict(m.headers or {}),
                        )
                        for m in msgs
                    ]
                    ctx, links = telemetry.batch_parent([m.headers for m in stored])
                    with telemetry.tracer.start_as_current_span(
                        "projector.apply",
                        context=ctx,
                        links=links,
                        kind=SpanKind.CONSUMER,
                        attributes={"swarm.batch": len(stored)},
                    ) as span:
                        await asyncio.to_thread(self.stage, stored)
                    traced.append(span.get_span_context())
                    metrics.projector_batch(s.swarm, len(stored))
                    if last_msg is None:
                        staged_since = time.monotonic()
                    last_msg = msgs[-1]
                due = time.monotonic() - staged_since >= COMMIT_EVERY
                if last_msg is not None and (not msgs or due or self.pending_events >= self.batch):
                    # Group commit: one DuckDB transaction for everything staged, then
                    # the log is acknowledged (AckAll) up to the last message.
                    await self._commit_and_ack(last_msg, traced)
                    last_msg = None
            if last_msg is not None:  # a clean stop commits what it staged
                await self._commit_and_ack(last_msg, traced)
        except BaseException:
            await asyncio.to_thread(self.discard_staged)
            raise
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _commit_and_ack(self, last_msg: Msg, traced: list[SpanContext]) -> None:
        # Traced in the trace of each staged batch (``traced``, emptied after).
        with telemetry.store_write("duckdb", self.swarm, parents=traced, batches=len(traced)):
            seq = await asyncio.to_thread(self.commit)
        traced.clear()
        await last_msg.ack()
        self.batches += 1
        await self._notify(seq)

    async def rebuild(
        self,
        *,
        until_seq: int | None = None,
        progress: Any = None,
        batch: int = 5000,
        workers: int | None = None,
    ) -> int:
        """Fold the log from the checkpoint up to ``until_seq`` (or its end); returns seq.

        A pipeline: the log is read ahead (a bounded queue of batches), and each batch
        is folded while the one before commits to DuckDB (which releases the GIL while
        it writes). No reader waits on a rebuild, so LanceDB is filled once at the end
        from the memories table (:meth:`catch_up_recall`, in (seq, id) order): each
        memory is embedded once, not once per change, and two rebuilds to the same
        sequence fill it identically. ``progress(seq)`` follows the committed sequence.

        ``workers``: fold processes (:mod:`projections.parallel`, memories partitioned
        by id; the same rows); 0 folds in this process; None chooses by the number of
        entries to fold and CPUs (``parallel.plan_workers``).
        """
        if self.log is None:
            raise SwarmError("this projector has no log to read")
        start = self.store.checkpoint()
        end = until_seq if until_seq is not None else await self.log.last_seq()
        n = parallel.plan_workers(workers, end - start)
        self._defer_recall = True
        try:
            if n > 0 and end > start:
                try:
                    await self._fold_parallel(end, progress, batch, n)
                except parallel.PartitionError as err:
                    log.warning("rebuild_in_one_process", reason=str(err))
            await self._fold_here(until_seq, progress, batch)
        finally:
            self._defer_recall = False
        await asyncio.to_thread(self.catch_up_recall)
        self._persist_recall_marker(force=True)
        return self.store.checkpoint()

    async def _read_ahead(
        self,
        queue: asyncio.Queue[list[StoredMessage] | None],
        until_seq: int | None,
        batch: int,
        stop: asyncio.Event,
    ) -> None:
        """Read the log from the checkpoint into ``queue`` in batches; None at the end
        (and after a failure: the consumer then finds it in the task). Ends early once
        ``stop`` is set (see :meth:`_wind_down`)."""
        assert self.log is not None
        try:
            pending: list[StoredMessage] = []
            reads = self.log.read(
                start_seq=self.store.checkpoint() + 1, until_seq=until_seq, batch=batch
            )
            try:
                async for messages in reads:
                    if stop.is_set():
                        return
                    pending.extend(messages)
                    if len(pending) >= batch:
                        await queue.put(pending)
                        pending = []
            finally:
                if (aclose := getattr(reads, "aclose", None)) is not None:
                    await aclose()  # its consumer on the server goes now, not at GC
            if pending:
                await queue.put(pending)
        except asyncio.CancelledError:
            raise  # the consumer stopped: no one takes from the queue any more
        except BaseException:
            await queue.put(None)
            raise
        await queue.put(None)

    @staticmethod
    async def _wind_down(
        committing: asyncio.Future[int] | None,
        reader: asyncio.Task[None],
        queue: asyncio.Queue[Any],
        stop: asyncio.Event,
    ) -> None:
        """After a rebuild's fold, whatever ended it: let a DuckDB commit in flight finish
        (its thread runs on), and stop the read-ahead task for good. Cancelling it is
        not enough: the NATS client can swallow a cancel (the reader then blocks on the
        full queue), so it is also told to stop, and the queue is drained until it has."""
        if committing is not None and not committing.done():
            await asyncio.wait([committing])
            if not committing.cancelled():
                committing.exception()  # retrieved: the first failure is the one raised
        stop.set()
        while not reader.done():
            reader.cancel()
            while not queue.empty():
                queue.get_nowait()
            await asyncio.wait([reader], timeout=0.1)
        if not reader.cancelled():
            reader.exception()  # retrieved here; raised by the caller if it matters

    async def _committed(self, task: asyncio.Future[int], progress: Any) -> None:
        self._projected = max(self._projected, await task)
        self._staged_seq = max(self._staged_seq, self._projected)
        if progress is not None:
            progress(self._projected)

    async def _fold_here(self, until_seq: int | None, progress: Any, batch: int) -> None:
        """The rebuild's fold in this process: stage batch N+1 while N commits."""
        queue: asyncio.Queue[list[StoredMessage] | None] = asyncio.Queue(maxsize=3)
        stop = asyncio.Event()
        reader = asyncio.create_task(self._read_ahead(queue, until_seq, batch, stop))
        committing: asyncio.Task[int] | None = None
        try:
            while (messages := await queue.get()) is not None:
                await asyncio.to_thread(self.stage, messages)
                if committing is not None:
                    await self._committed(committing, progress)
                committing = asyncio.create_task(asyncio.to_thread(self.commit))
            if committing is not None:
                await self._committed(committing, progress)
        finally:
            await self._wind_down(committing, reader, queue, stop)
        if not reader.cancelled() and (err := reader.exception()) is not None:
            raise err

    async def _fold_parallel(self, until_seq: int, progress: Any, batch: int, workers: int) -> None:
        """The rebuild's fold in ``workers`` processes (projections.parallel): batch N+1
        is sent to them before batch N's shares are merged and committed; erasures
        apply before their batch commits, as in :meth:`stage`."""
        queue: asyncio.Queue[list[StoredMessage] | None] = asyncio.Queue(maxsize=3)
        stop = asyncio.Event()
        reader = asyncio.create_task(self._read_ahead(queue, until_seq, batch, stop))
        resumed = self.store.checkpoint() > 0
        committing: asyncio.Future[int] | None = None
        pending: list[tuple[int, dict[str, Any]]] = []  # merged batches, not yet committing
        cache = max(1, self.cache_size // workers)
        try:
            async with parallel.FoldPool(workers, cache_size=cache) as pool:
                inflight: tuple[parallel.Split, list[asyncio.Future[Any] | None]] | None = None
                after = self.store.checkpoint()
                while True:
                    messages = await queue.get()
                    sent = None
                    split = pool.split(messages, after) if messages is not None else None
                    if split is not None:
                        after = split.last_seq
                        loaded = (
                            await asyncio.to_thread(self._saved_docs, split.new_ids)
                            if resumed
                            else None
                        )
                        sent = (split, pool.submit(split, loaded))
                    if inflight is not None:
                        done, handles = inflight
                        tables = await pool.collect(done, handles)
                        for record in done.erasures:  # first: no plain text of them from here on
                            await asyncio.to_thread(self._erase, record)
                        pending.append((done.last_seq, tables))
                        # Group commit: while DuckDB writes (a checkpoint can take seconds)
                        # the workers go on; what they folded meanwhile commits next, at once.
                        if committing is not None and (
                            committing.done() or len(pending) >= parallel.MAX_PENDING
                        ):
                            await self._committed(committing, progress)
                            committing = None
                        if committing is None:
                            committing = asyncio.ensure_future(
                                asyncio.to_thread(self._commit_tables, pending)
                            )
                            pending = []
                    inflight = sent
                    if messages is None:
                        break
                if committing is not None:
                    await self._committed(committing, progress)
                if pending:
                    committing = asyncio.ensure_future(
                        asyncio.to_thread(self._commit_tables, pending)
                    )
                    await self._committed(committing, progress)
        finally:
            await self._wind_down(committing, reader, queue, stop)
        if not reader.cancelled() and (err := reader.exception()) is not None:
            raise err

    def _saved_docs(self, new_ids: list[set[str]]) -> list[dict[str, tuple[bytes, int]]]:
        """For each worker, the committed documents of memories new to it (a resumed
        rebuild: the state at the checkpoint, with its version)."""
        return [self.store.load_docs_with_version(sorted(ids)) if ids else {} for ids in new_ids]

    def _commit_tables(self, batches: list[tuple[int, dict[str, Any]]]) -> int:
        """Commit merged batches to DuckDB in one transaction, with the checkpoint."""
        last_seq = batches[-1][0]
        parallel.apply_tables(self.store, last_seq, parallel.combine([t for _, t in batches]))
        return last_seq

    # -- reads (the Views protocol) -------------------------------------------------------

    async def wait_for(self, seq: int, timeout: float, *, durable: bool = False) -> None:
        """Wait until ``seq`` is readable (``durable``: committed to DuckDB, for history)."""

        def reached() -> bool:
            return (self._projected if durable else self._visible) >= seq

        if reached():
            return
        await wait_until(self._changed, reached, timeout, f"the projection to reach {seq}")

    async def get(
        self, memory_id: str, requester: str | None, as_of: int | None = None
    ) -> dict[str, Any] | None:
        """The memory now, or once the log held seq ``as_of`` (which DuckDB must have
        applied: ``wait_for(as_of, durable=True)``); None if absent or not visible."""
        if as_of is not None:
            row = await asyncio.to_thread(self.store.memory_as_of, memory_id, as_of)
        else:
            with self._recent_lock:
                row = self._recent.get(memory_id)
            if row is None:
                row = await asyncio.to_thread(self.store.get_memory, memory_id)
        return visible(row, requester)

    async def history(self, memory_id: str, requester: str | None) -> list[dict[str, Any]] | None:
        """Every version, oldest first, each with its ``author`` and ``changes``
        (a readable diff against the version before, see swarm.diff)."""
        current = await self.get(memory_id, requester)
        if current is None:
            return None
        return annotate(await asyncio.to_thread(self.store.history, memory_id))

    async def seq_at(self, when: datetime) -> int:
        """The last log sequence accepted at or before ``when`` that DuckDB holds."""
        return await asyncio.to_thread(self.store.seq_at, when)

    @property
    def snapshots(self) -> RecallSnapshots:
        """Recall tables of past sequences (``asof/`` beside the DuckDB file by default)."""
        if self._snapshots is None:
            self._snapshots = RecallSnapshots(
                self.store.path.parent / "asof", self.recall_store.embedder
            )
        return self._snapshots

    async def recall(
        self,
        query: str,
        *,
        k: int,
        requester: str | None,
        agent: str | None,
        kind: str | None,
        tags: list[str],
        as_of: int | None = None,
    ) -> list[dict[str, Any]]:
        """Hybrid search now, or as the projection held the memories at seq ``as_of``
        (a recall snapshot; DuckDB must have applied ``as_of``)."""
        search = (
            self.recall_store.search
            if as_of is None
            else functools.partial(self.snapshots.search, self.store, as_of)
        )
        hits = await asyncio.to_thread(
            search,
            query,
            k=k,
            requester=requester,
            agent=agent,
            kind=kind,
            tags=tags,
        )
        return [dict(hit) for hit in hits]

    async def audit(
        self, *, agent: str | None, since_seq: int, since_time: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            self.store.audit_rows,
            agent=agent,
            since_seq=since_seq,
            since_time=since_time,
            limit=limit,
        )

    async def rejections(
        self, since: int, limit: int, agent: str | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.rejections_since, since, limit, agent)

    async def tail(self, since: int, limit: int, requester: str) -> list[dict[str, Any]]:
        """Accepted events after ``since`` (metadata, no content), without those on
        memories private to another agent (``_admin`` sees them all)."""
        reader = None if requester == ADMIN else requester
        return await asyncio.to_thread(self.store.tail, since, limit, reader)

    async def memories(
        self,
        agent: str | None,
        *,
        after_seq: int,
        limit: int,
        requester: str,
        forgotten: bool = False,
    ) -> list[dict[str, Any]]:
        """Current memory rows (of ``agent``) in the order of their last change, as
        ``get`` shows them: private ones only to their agent and ``_admin``."""
        reader = None if requester == ADMIN else requester
        return await asyncio.to_thread(
            self.store.list_memories,
            agent,
            after_seq=after_seq,
            limit=limit,
            reader=reader,
            forgotten=forgotten,
        )

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.store.counts)

    async def erase_plan(
        self, memory_ids: list[str], *, about: str | None, mentions: bool
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.erase_plan_now, memory_ids, about=about, mentions=mentions
        )

    async def ingest_counts(self) -> tuple[int, dict[str, int]]:
        return await asyncio.to_thread(self.store.ingest_counts)
