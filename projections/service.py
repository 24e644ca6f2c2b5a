"""The Swarm Memory service in one process: gate, projector, read API.

``swarm up`` runs this beside an embedded nats-server; tests and embedding
applications use it directly::

    async with SwarmService(url, swarm="default", data_dir=".swarm") as service:
        await service.wait_closed()
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import nats.errors
import structlog

from projections.duckdb_store import DuckStore
from projections.lance import LanceRecall
from projections.layout import keystore_path, store_paths
from projections.runner import Projector
from swarm import metrics
from swarm.api import ReadApi
from swarm.codec import decode_rejection
from swarm.embed import Embedder, load_embedder
from swarm.errors import SwarmError
from swarm.gate import Gate, Limits
from swarm.gatekeeper import APPROVAL_TTL, GateWorker
from swarm.identity import Credentials
from swarm.jetstream import Closed, JetStreamLog, LogSettings, connect
from swarm.keystore import Keystore
from swarm.laws import LawSet, LawSpec, default_laws
from swarm.subjects import Subjects

__all__ = ["Role", "SwarmService", "store_paths"]

#: What one service process runs: everything, or one side of the split that
#: `swarm up` uses (the gate in one process, projector and reads in another, so
#: neither waits on the other's GIL).
Role = Literal["all", "gate", "projector"]

log = structlog.get_logger(__name__)


class SwarmService:
    def __init__(
        self,
        url: str,
        *,
        swarm: str = "default",
        data_dir: str | Path = ".swarm",
        laws: LawSet | None = None,
        embedder: Embedder | None = None,
        limits: Limits | None = None,
        settings: LogSettings | None = None,
        projector_batch: int = 1000,
        role: Role = "all",
        approval_ttl: float = APPROVAL_TTL,
        credentials: Credentials | None = None,
        require_sealed: bool = True,
    ) -> None:
        self.url = url
        #: Refuse plain-text content (it could never be erased from the log).
        self.require_sealed = require_sealed
        self.keys: Keystore | None = None
        self.subjects = Subjects(swarm)
        self.data_dir = Path(data_dir)
        # Laws given (from specs, e.g. a law file) are enacted in the log at start;
        # none given: the log's laws, or the defaults on a first start.
        self.laws = laws or default_laws()
        self.law_specs = (
            [s for s in laws.specs if isinstance(s, LawSpec)]
            if laws is not None and laws.specs is not None
            else None
        )
        self.approval_ttl = approval_ttl
        self.credentials = credentials  # the service's NATS login (swarm.auth)
        self.embedder = embedder or load_embedder(os.environ.get("SWARM_EMBEDDER", "hashing"))
        self.limits = limits
        self.settings = settings
        self.projector_batch = projector_batch
        self.role = role
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self.log: JetStreamLog | None = None
        self.store: DuckStore | None = None
        self.gate: GateWorker | None = None
        self.projector: Projector | None = None
        self.api: ReadApi | None = None

    @property
    def paths(self) -> dict[str, str]:
        duck, lance = store_paths(self.data_dir, self.subjects.swarm)
        keys = keystore_path(self.data_dir, self.subjects.swarm)
        return {"duckdb": str(duck), "lancedb": str(lance), "keys": str(keys)}

    async def start(self) -> SwarmService:
        nc = await connect(
            self.url, name=f"swarm-service:{self.subjects.swarm}", credentials=self.credentials
        )
        self.log = JetStreamLog(nc, self.subjects, self.settings)
        try:
            await self.log.ensure_streams()
        except nats.errors.NoRespondersError:
            await nc.close()
            raise SwarmError(
                f"JetStream is not enabled on {self.url} (start nats-server with -js)"
            ) from None
        # The gate seals and opens with it; the projector opens, and scrubs on erasure.
        self.keys = Keystore(keystore_path(self.data_dir, self.subjects.swarm))
        if self.role in ("all", "gate"):
            self.gate = GateWorker(
                self.log,
                Gate(
                    self.subjects.swarm,
                    self.laws,
                    self.limits,
                    keys=self.keys,
                    require_sealed=self.require_sealed,
                ),
                law_specs=self.law_specs,
                approval_ttl=self.approval_ttl,
            )
            gate_task = self._spawn(self.gate.run(self._stop), "gate")
            await self._until_ready(self.gate, gate_task)
        if self.role in ("all", "projector"):
            duck_path, lance_path = store_paths(self.data_dir, self.subjects.swarm)
            duck_path.parent.mkdir(parents=True, exist_ok=True)
            self.store = DuckStore(duck_path)
            recall = LanceRecall(lance_path, self.embedder)
            self.projector = Projector(
                self.log,
                self.store,
                recall,
                batch=self.projector_batch,
                keys=self.keys,
                scrub_copies=True,
            )
            self._spawn(self.projector.run(self._stop), "projector")
            self._spawn(self._project_rejections(), "rejections")
            if metrics.enabled():  # stream sizes and lag for the gauges
                self._spawn(metrics.watch(self.log, self.projector, self._stop), "metrics")
        self.api = ReadApi(self.log, self.projector, self.gate)
        await self.api.start()
        log.info(
            "service_started", swarm=self.subjects.swarm, role=self.role, url=self.url, **self.paths
        )
        return self

    async def _until_ready(self, gate: GateWorker, task: asyncio.Task[None]) -> None:
        """Wait until the gate has settled the law set (so the log is, when start returns)."""
        ready = asyncio.create_task(gate.ready.wait())
        await asyncio.wait({ready, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return
        ready.cancel()
        await self.stop()
        if task.done() and task.exception() is not None:
            raise (
                self.failure
                if isinstance(self.failure, SwarmError)
                else SwarmError(f"the gate failed to start: {task.exception()!r}")
            )
        raise SwarmError("the gate did not become ready within 60 s")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)

        def _done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and (err := t.exception()) is not None:
                log.error("task_failed", task=name, error=repr(err))
                self.failure = self.failure or err
                self._stop.set()

        task.add_done_callback(_done)
        self._tasks.append(task)
        return task

    async def _project_rejections(self) -> None:
        assert self.log is not None and self.store is not None
        s, store = self.subjects, self.store
        sub = await self.log.durable_pull(
            stream=s.rejected_stream,
            durable="rejections",
            filter_subject=s.rejected_all,
            start_seq=store.checkpoint("rejections") + 1,
            ack_all=True,
            fresh=True,
        )
        while not self._stop.is_set():
            try:
                msgs = await self.log.fetch(sub, 500, 0.5)
            except Closed:
                return
            if not msgs:
                continue
            rows = []
            for m in msgs:
                record = decode_rejection(m.data)
                rows.append(
                    {
                        "seq": m.metadata.sequence.stream,
                        **record.model_dump(exclude={"schema_version"}),
                    }
                )
            await asyncio.to_thread(store.apply_rejections, rows, rows[-1]["seq"])
            await msgs[-1].ack()

    async def wait_closed(self) -> None:
        """Run until :meth:`stop` is called; re-raise a component's failure."""
        await self._stop.wait()
        if isinstance(self.failure, SwarmError):
            raise self.failure
        if self.failure is not None:
            raise SwarmError(f"the service stopped: {self.failure!r}") from self.failure

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        if self.api is not None:
            await self.api.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
        self._tasks.clear()
        if self.log is not None and not self.log.nc.is_closed:
            # Every loop has ended; nothing is in flight, so close (drain can wait 30 s on
            # the pull subscriptions' pending requests).
            await self.log.nc.close()
        if self.projector is not None:
            self.projector.close()
        elif self.store is not None:
            self.store.close()
        if self.keys is not None:
            self.keys.close()
        log.info("service_stopped", swarm=self.subjects.swarm)

    async def __aenter__(self) -> SwarmService:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
