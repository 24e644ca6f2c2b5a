"""Folding the log in worker processes, one partition of the memories each.

:meth:`~projections.runner.Projector.rebuild` on a long log (``plan_workers``)
hands the fold to ``N`` worker processes. Memories are independent Automerge
documents, so they are partitioned by id (``crc32(memory_id) % N``, read from
the subject ``swarm.<s>.log.<agent>.<memory_id>``): each worker receives every
record of its memories, in log order, keeps their documents (Automerge objects
do not cross processes) and returns its share of the batch's rows as Arrow
tables. System records (``swarm.<s>.sys.>``) touch no memory: the main process
decodes them and applies erasures itself, before the batch commits, as
:meth:`~projections.runner.Projector.stage` does. The main process reads the log,
merges the partitions' tables (sorted by seq) and commits each batch to DuckDB
in one transaction with its checkpoint, exactly the statements of
:meth:`~projections.duckdb_store.DuckStore.apply`: the rows are those of the
one-process fold (the same ``reducers.fold``), only computed elsewhere.

A worker checks that each record's memory is the one its subject names; if not
(a record written around the gate), the rebuild stops the workers and goes on in
one process from the last committed batch (``PartitionError``).

Workers are fresh interpreters (``sys.executable``, the parent's import path; no
fork of a process holding a NATS connection and threads, and unlike a
multiprocessing ``spawn`` child they never re-run the caller's ``__main__``). They
get bytes over pipes, ignore SIGINT (the main process stops them), exit when the
main process goes away (EOF on their pipe), and are terminated if the rebuild
fails or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import traceback
import zlib
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from projections import duckdb_store as ds
from projections.duckdb_store import DuckStore
from projections.reducers import Projected, fold, system_event_row, unreadable_row
from swarm.codec import decode_log_entry
from swarm.crdt import MemoryDoc
from swarm.errors import SchemaError, SwarmError
from swarm.events import LogRecord, MemoryErased, SystemRecord
from swarm.jetstream import StoredMessage

__all__ = [
    "PARALLEL_MIN",
    "FoldPool",
    "PartitionError",
    "Split",
    "apply_tables",
    "plan_workers",
]

log = structlog.get_logger(__name__)

#: Below this many log entries a rebuild folds in its own process. Measured on 2
#: CPUs (bench_replay's log): 10k entries, no gain (starting the interpreters and
#: filling the pipeline eat it); 15k, +15-20%; 20k, +25-30%; 100k, about 1.6x.
PARALLEL_MIN = 15_000
#: At most this many fold processes (the main process reads NATS and writes DuckDB).
MAX_WORKERS = 4
#: Batches merged while DuckDB commits before the pipeline waits for it.
MAX_PENDING = 4
#: The tables a worker returns, in the order DuckStore.apply writes them.
TABLES = ("events", "memories", "memory_versions", "crdt_docs")

#: (seq, memory id from the subject, subject, data, trace id): one record for a worker.
Entry = tuple[int, str, str, bytes, str | None]


class PartitionError(SwarmError):
    """A record's memory is not the one its subject names: it cannot be routed."""


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def plan_workers(requested: int | None, entries: int) -> int:
    """Fold processes for a rebuild of ``entries`` log entries: ``requested`` if given
    (0: fold in this process), else none below PARALLEL_MIN or on one CPU, else one
    per CPU (at most MAX_WORKERS)."""
    if requested is not None:
        return max(0, requested)
    cpus = available_cpus()
    if entries < PARALLEL_MIN or cpus < 2 or not sys.executable:  # (embedded: no interpreter)
        return 0
    return min(MAX_WORKERS, cpus)


def partition_of(memory_id: str, workers: int) -> int:
    """The worker of a memory: the same in every process (not ``hash()``: salted)."""
    return zlib.crc32(memory_id.encode()) % workers


def trace_id(headers: Mapping[str, str]) -> str | None:
    tp = headers.get("traceparent")
    return tp.split("-")[1] if tp else None


# -- the worker -------------------------------------------------------------------------------


class _Partition:
    """The memories of one worker: documents of the recent ones (an LRU of
    ``cache_size``), the saved bytes of every one (to reload an evicted document,
    as the one-process projector reloads it from ``crdt_docs``)."""

    def __init__(self, cache_size: int) -> None:
        self.cache_size = max(1, cache_size)
        self.live: OrderedDict[str, Projected] = OrderedDict()
        self.saved: dict[str, tuple[bytes, int]] = {}

    def known(self, memory_ids: set[str]) -> dict[str, Projected]:
        out: dict[str, Projected] = {}
        for mid in memory_ids:
            projected = self.live.get(mid)
            if projected is None and (saved := self.saved.get(mid)) is not None:
                projected = Projected(MemoryDoc.load(saved[0]), saved[1])
            if projected is not None:
                out[mid] = projected
        return out

    def fold(self, entries: Sequence[Entry], loaded: Mapping[str, tuple[bytes, int]]) -> Any:
        """Fold this partition's share of a batch; its rows as Arrow tables."""
        self.saved.update(loaded)  # a resumed rebuild: the state at its checkpoint
        records: list[tuple[int, LogRecord | SystemRecord, str | None]] = []
        unreadable: list[int] = []
        for seq, mid, subject, data, trace in entries:
            try:
                record = decode_log_entry(subject, data)
            except SchemaError as err:  # written around the gate: keep going, audit names it
                log.error("unreadable_log_entry", seq=seq, error=str(err))
                unreadable.append(seq)
                continue
            if not isinstance(record, LogRecord) or record.event.memory_id != mid:
                return {"misrouted": seq}
            records.append((seq, record, trace))
        touched = {r.event.memory_id for _, r, _ in records if isinstance(r, LogRecord)}
        folded = fold(records, self.known(touched))
        events = folded.events
        if unreadable:
            events = sorted(events + [unreadable_row(s) for s in unreadable], key=_seq)
        tables = {
            "events": ds._arrow("events", ds._unique_events(events)),
            "memories": ds._arrow("memories", list(folded.memories.values())),
            "memory_versions": ds._arrow("memory_versions", folded.versions),
            "crdt_docs": ds._arrow("crdt_docs", list(folded.docs.values())),
        }
        for mid, projected in folded.touched.items():
            self.live[mid] = projected
            self.live.move_to_end(mid)
            self.saved[mid] = (folded.docs[mid]["doc"], projected.version)
        while len(self.live) > self.cache_size:
            self.live.popitem(last=False)
        return {"tables": tables}


def _seq(row: Mapping[str, Any]) -> int:
    return int(row["seq"])


#: How a worker starts: a fresh interpreter with the parent's import path, not a
#: multiprocessing child (which would re-run the parent's ``__main__``).
_BOOT = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ.pop('SWARM_FOLD_PATH')); "
    "from projections.parallel import worker_main; worker_main(*map(int, sys.argv[1:]))"
)


def worker_main(jobs_fd: int, results_fd: int, cache_size: int) -> None:
    """A fold process: jobs in, Arrow tables out, until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the workers
    jobs = Connection(jobs_fd, writable=False)
    results = Connection(results_fd, readable=False)
    captured: list[tuple[str, dict[str, Any]]] = []

    def capture(_logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        captured.append((method, dict(event)))  # logged by the main process
        raise structlog.DropEvent

    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    partition = _Partition(cache_size)
    while True:
        try:
            job = pickle.loads(jobs.recv_bytes())
        except (EOFError, OSError):
            return  # the main process is gone
        if job is None:
            return
        try:
            reply: tuple[str, Any, list[Any]] = ("ok", partition.fold(*job), captured[:])
        except Exception as err:
            reply = ("error", "".join(traceback.format_exception(err)), captured[:])
        captured.clear()
        try:
            results.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return


# -- the main process -------------------------------------------------------------------------


@dataclass
class Split:
    """One batch of log messages, split for the workers."""

    last_seq: int
    parts: list[list[Entry]]
    new_ids: list[set[str]]  # per worker: memories not routed before in this rebuild
    events: list[dict[str, Any]] = field(default_factory=list)  # system and unreadable rows
    erasures: list[MemoryErased] = field(default_factory=list)
    records: pa.Table | None = None


@dataclass
class _Worker:
    name: str
    process: subprocess.Popen[bytes]
    jobs: Connection
    results: Connection
    sending: asyncio.Future[None] | None = None
    receiving: asyncio.Future[Any] | None = None


class FoldPool:
    """``workers`` fold processes (see the module docstring). Use as an async context
    manager: leaving it stops them (terminates them after an error or a cancel)."""

    def __init__(self, workers: int, *, cache_size: int) -> None:
        if workers < 1:
            raise ValueError("a fold pool needs at least one worker")
        self.n = workers
        self.cache_size = cache_size
        self._workers: list[_Worker] = []
        self._seen: set[str] = set()
        # Its own threads: one send and one receive may block per worker at a time.
        self._threads = ThreadPoolExecutor(2 * workers + 1, thread_name_prefix="swarm-fold")

    async def __aenter__(self) -> FoldPool:
        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, self._start)
        except BaseException:
            await self.aclose(abort=True)
            raise
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.aclose(abort=exc_type is not None)

    def _start(self) -> None:
        env = {**os.environ, "SWARM_FOLD_PATH": json.dumps(sys.path)}
        for i in range(self.n):
            jobs_r, jobs_w = os.pipe()
            results_r, results_w = os.pipe()
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _BOOT,
                        str(jobs_r),
                        str(results_w),
                        str(self.cache_size),
                    ],
                    pass_fds=(jobs_r, results_w),
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
            except BaseException:
                for fd in (jobs_r, jobs_w, results_r, results_w):
                    os.close(fd)
                raise
            # The worker's ends: only it holds them now, so EOF reaches either side.
            os.close(jobs_r)
            os.close(results_w)
            jobs = Connection(jobs_w, readable=False)
            results = Connection(results_r, writable=False)
            self._workers.append(_Worker(f"fold worker {i}", process, jobs, results))

    async def aclose(self, *, abort: bool = False) -> None:
        """Stop the workers: ask them and wait, or (``abort``) terminate them at once.
        Pipes close only once no thread uses them (a blocked one fails on EOF/EPIPE)."""
        workers, self._workers = self._workers, []
        for w in workers:
            if abort:
                w.process.terminate()
            else:
                with contextlib.suppress(OSError, ValueError):
                    w.jobs.send_bytes(pickle.dumps(None))
        for w in workers:
            for task in (w.sending, w.receiving):
                if task is not None:
                    await _settled(task)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, _reap, workers, not abort)
        self._threads.shutdown(wait=False)

    # -- a batch --------------------------------------------------------------------------

    def split(self, messages: Sequence[StoredMessage], after: int) -> Split | None:
        """Route the messages beyond seq ``after``: memory records to their workers,
        system records decoded here (their rows, and erasures to apply)."""
        parts: list[list[Entry]] = [[] for _ in range(self.n)]
        new_ids: list[set[str]] = [set() for _ in range(self.n)]
        seqs: list[int] = []
        datas: list[bytes] = []
        out = Split(last_seq=after, parts=parts, new_ids=new_ids)
        seen = self._seen
        for msg in messages:
            if msg.seq <= after:
                continue  # already folded: replay is safe
            seqs.append(msg.seq)
            datas.append(msg.data)
            tokens = msg.subject.split(".")
            if len(tokens) > 2 and tokens[2] == "sys":
                self._system(msg, out)
                continue
            mid = tokens[4] if len(tokens) == 5 else ""
            i = partition_of(mid, self.n)
            parts[i].append((msg.seq, mid, msg.subject, msg.data, trace_id(msg.headers)))
            if mid not in seen:
                seen.add(mid)
                new_ids[i].add(mid)
        if not seqs:
            return None
        out.last_seq = seqs[-1]
        out.records = pa.table(
            {"seq": pa.array(seqs, pa.int64()), "record": pa.array(datas, pa.binary())},
            schema=ds._SCHEMAS["event_records"],
        )
        return out

    @staticmethod
    def _system(msg: StoredMessage, out: Split) -> None:
        try:
            record = decode_log_entry(msg.subject, msg.data)
        except SchemaError as err:
            log.error("unreadable_log_entry", seq=msg.seq, error=str(err))
            out.events.append(unreadable_row(msg.seq))
            return
        if isinstance(record, LogRecord):  # pragma: no cover - .sys. subjects decode as system
            raise PartitionError(f"seq {msg.seq}: a memory record on a system subject")
        out.events.append(system_event_row(msg.seq, record, trace_id(msg.headers)))
        if isinstance(record, MemoryErased):
            out.erasures.append(record)

    def submit(
        self, split: Split, loaded: Sequence[Mapping[str, tuple[bytes, int]]] | None = None
    ) -> list[asyncio.Future[Any] | None]:
        """Send each worker its part (and, on a resumed rebuild, the saved documents of
        its memories new to it); the tasks that receive their replies, in order."""
        handles: list[asyncio.Future[Any] | None] = []
        for i, part in enumerate(split.parts):
            if not part:
                handles.append(None)
                continue
            w = self._workers[i]
            job = (part, loaded[i] if loaded is not None else {})
            w.sending = asyncio.ensure_future(self._send(w, w.sending, job))
            w.receiving = asyncio.ensure_future(self._receive(w, w.receiving))
            handles.append(w.receiving)
        return handles

    async def _send(self, w: _Worker, before: asyncio.Future[None] | None, job: Any) -> None:
        if before is not None:
            await _settled(before)  # in order; a failure shows at the receive
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, _send_job, w.jobs, job)

    async def _receive(self, w: _Worker, before: asyncio.Future[Any] | None) -> Any:
        if before is not None:
            await _settled(before)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._threads, _receive_reply, w.results)
        except (EOFError, OSError):
            raise SwarmError(
                f"{w.name} (pid {w.process.pid}) stopped (exit code {w.process.poll()})"
            ) from None

    async def collect(
        self, split: Split, handles: Sequence[asyncio.Future[Any] | None]
    ) -> dict[str, pa.Table]:
        """The batch's tables: the workers' shares and the system rows, merged."""
        shares: list[dict[str, pa.Table]] = []
        for handle in handles:
            if handle is None:
                continue
            status, value, logs = await handle
            for method, event in logs:
                getattr(log, method, log.error)(event.pop("event", "fold_worker"), **event)
            if status != "ok":
                raise SwarmError(f"a fold worker failed:\n{value}")
            if "misrouted" in value:
                raise PartitionError(
                    f"seq {value['misrouted']}: the record's memory is not its subject's"
                )
            shares.append(value["tables"])
        return await asyncio.get_running_loop().run_in_executor(self._threads, merge, shares, split)


def _reap(workers: Sequence[_Worker], wait: bool) -> None:
    for w in workers:
        try:
            w.process.wait(timeout=30 if wait else 5)
        except subprocess.TimeoutExpired:
            w.process.terminate()
            try:
                w.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGTERM is not ignored
                w.process.kill()
                w.process.wait()
        w.jobs.close()
        w.results.close()


async def _settled(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` to end, whatever its outcome (retrieved: no warning)."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()


def _send_job(conn: Connection, job: Any) -> None:
    conn.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))


def _receive_reply(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def merge(shares: Sequence[Mapping[str, pa.Table]], split: Split) -> dict[str, pa.Table]:
    """One table per target: the partitions' rows (and the system rows), by seq."""
    out: dict[str, pa.Table] = {}
    for name in TABLES:
        parts = [share[name] for share in shares]
        if name == "events" and split.events:
            parts.append(ds._arrow("events", split.events))
        table = pa.concat_tables(parts) if parts else ds._SCHEMAS[name].empty_table()
        out[name] = table.sort_by("seq") if table.num_rows > 1 else table
    events = out["events"]
    if events.num_rows and pc.count_distinct(events["event_id"]).as_py() != events.num_rows:
        # An event id twice in the batch (across partitions): the first one stays.
        out["events"] = ds._arrow("events", ds._unique_events(events.to_pylist()))
    assert split.records is not None
    out["event_records"] = split.records
    return out


def combine(batches: Sequence[Mapping[str, pa.Table]]) -> dict[str, pa.Table]:
    """Merged batches (in log order) as one: for a group commit. Per memory the latest
    row (the highest seq, as the upserts keep); an event id twice: the first stays."""
    if len(batches) == 1:
        return dict(batches[0])
    out = {name: pa.concat_tables([b[name] for b in batches]) for name in batches[0]}
    out["memories"] = _latest(out["memories"], "id")
    out["crdt_docs"] = _latest(out["crdt_docs"], "memory_id")
    events = out["events"]
    if events.num_rows and pc.count_distinct(events["event_id"]).as_py() != events.num_rows:
        out["events"] = ds._arrow("events", ds._unique_events(events.to_pylist()))
    return out


def _latest(table: pa.Table, key: str) -> pa.Table:
    """The last row of each ``key`` (rows in seq order)."""
    last = {k: i for i, k in enumerate(table.column(key).to_pylist())}
    if len(last) == table.num_rows:
        return table
    return table.take(sorted(last.values()))


def apply_tables(store: DuckStore, last_seq: int, tables: Mapping[str, pa.Table]) -> None:
    """``DuckStore.apply`` of rows already in Arrow tables: the same statements, in one
    transaction with the checkpoint (skipped whole if the checkpoint is not behind)."""
    sources = {
        "events": "_batch_events",
        "memories": "_batch_memories",
        "memory_versions": "_batch_versions",
        "crdt_docs": "_batch_docs",
        "event_records": "_batch_records",
    }
    statements = {
        "events": ds._insert_events_sql("_batch_events"),
        "memories": ds._upsert_sql("memories", "id", "_batch_memories"),
        "memory_versions": ds._insert_new_sql("memory_versions", "_batch_versions", after=False),
        "crdt_docs": ds._upsert_sql("crdt_docs", "memory_id", "_batch_docs"),
        "event_records": ds._insert_new_sql("event_records", "_batch_records", after=True),
    }
    used = [name for name in sources if tables[name].num_rows]
    store._run_batch(
        "apply",
        "projector",
        last_seq,
        {sources[name]: tables[name] for name in used},
        [statements[name] for name in used],
    )
