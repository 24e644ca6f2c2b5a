"""Read endpoints over NATS request/reply, so any process (or language) can read.

``swarm.<swarm>.api.<op>.<requester>`` with a JSON request; the answer is
``{"ok": true, "result": …}`` or ``{"ok": false, "error": {"type", "message"}}``.

=========  ==========================================================================
op         request fields
=========  ==========================================================================
get        id, after?, as_of?
history    id, after?               (each version with author and changes, see swarm.diff)
recall     query, k?, after?, agent?, kind?, tags?, as_of?
status     —
rejections since?, limit?        (audit records of refused writes, content withheld)
tail       since?, limit?        (accepted events after seq ``since``, metadata only)
memories   agent?, after_seq?, limit?, forgotten?  (current rows in order of last change)
doc        id                     (the memory's Automerge bytes, for writers)
approvals  status?                (proposals held for approval; status pending|all|…)
approve    proposal, reason?      (the requester approves; see swarm.approvals)
deny       proposal, reason?
laws       —                      (the laws in force, and the law-set version)
law_history —                     (every law.enacted / law.repealed record)
=========  ==========================================================================

``doc`` and the approval and law operations are served by the gate's process.

``after`` makes the read wait until the projection has applied that log
sequence (read-your-writes across processes). The requester is the subject's
last token, never a body field: with auth on, the NATS server lets an agent
publish only requests naming itself (see swarm.auth). Private memories are
visible only to the agent that wrote them, and to ``_admin``; once agents are
registered, an agent's ``rejections`` are its own only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.trace import SpanKind

from swarm import metrics, telemetry
from swarm.auth import ADMIN, may_answer_to
from swarm.errors import ConfigError, Forbidden, NotFound, SwarmError, Timeout
from swarm.events import RollbackSpec, parse_time
from swarm.gatekeeper import GateWorker
from swarm.jetstream import JetStreamLog
from swarm.timeline import parse_as_of, since_bounds

__all__ = ["OPERATIONS", "ReadApi", "Views"]

log = structlog.get_logger(__name__)

OPERATIONS = (
    "get",
    "history",
    "recall",
    "status",
    "rejections",
    "tail",
    "memories",
    "audit",
    "doc",
    "approvals",
    "approve",
    "deny",
    "laws",
    "law_history",
    "rollback",
    "keys",
    "erase",
    "erase_plan",
)
#: Operations the gate's process answers (it holds the documents, laws and proposals).
GATE_OPERATIONS = frozenset(
    {"doc", "approvals", "approve", "deny", "laws", "law_history", "rollback", "keys", "erase"}
)
MAX_WAIT = 30.0


class Views(Protocol):
    """What the projections offer to readers."""

    @property
    def projected_seq(self) -> int: ...

    @property
    def visible_seq(self) -> int: ...

    async def wait_for(self, seq: int, timeout: float, *, durable: bool = False) -> None: ...

    def read_after(self, seq: int) -> AbstractContextManager[None]: ...

    async def get(
        self, memory_id: str, requester: str | None, as_of: int | None = None
    ) -> dict[str, Any] | None: ...

    async def seq_at(self, when: datetime) -> int: ...

    async def history(
        self, memory_id: str, requester: str | None
    ) -> list[dict[str, Any]] | None: ...

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
    ) -> list[dict[str, Any]]: ...

    async def counts(self) -> dict[str, int]: ...

    async def ingest_counts(self) -> tuple[int, dict[str, int]]: ...

    async def audit(
        self, *, agent: str | None, since_seq: int, since_time: str | None, limit: int
    ) -> list[dict[str, Any]]: ...

    async def rejections(
        self, since: int, limit: int, agent: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def tail(self, since: int, limit: int, requester: str) -> list[dict[str, Any]]: ...

    async def memories(
        self,
        agent: str | None,
        *,
        after_seq: int,
        limit: int,
        requester: str,
        forgotten: bool = False,
    ) -> list[dict[str, Any]]: ...

    async def erase_plan(
        self, memory_ids: list[str], *, about: str | None, mentions: bool
    ) -> dict[str, Any]: ...


class ReadApi:
    def __init__(
        self, log: JetStreamLog, views: Views | None, gate: GateWorker | None = None
    ) -> None:
        self.log = log
        self.views = views
        self.gate = gate
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._has_agents = False

    async def _secured(self) -> bool:
        """True once the swarm has registered agents (it never goes back to open)."""
        self._has_agents = self._has_agents or await self.log.has_agents()
        return self._has_agents

    async def start(self) -> None:
        """Serve the operations this process can answer: reads with views, `doc` with a gate."""
        ops = [
            op
            for op in OPERATIONS
            if (op in GATE_OPERATIONS and self.gate) or (op not in GATE_OPERATIONS and self.views)
        ]
        for op in ops:
            sub = await self.log.nc.subscribe(
                self.log.subjects.api(op, "*"), queue="swarm-api", cb=self._dispatch
            )
            self._subs.append(sub)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
        for task in list(self._tasks):
            task.cancel()

    async def _dispatch(self, msg: Msg) -> None:
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        op, requester = self.log.subjects.parse_api(msg.subject) or ("?", "?")
        ctx = telemetry.extract(msg.headers)
        started = time.perf_counter()
        with telemetry.tracer.start_as_current_span(
            f"api.{op}",
            context=ctx,
            kind=SpanKind.SERVER,
            attributes=telemetry.attrs(requester=requester),
        ):
            try:
                request = json.loads(msg.data or b"{}")
                if not isinstance(request, dict):
                    raise SwarmError("a request must be a JSON object")
                request["requester"] = requester  # the subject's, which the server enforces
                result = await self._run(op, request)
                if op == "recall":
                    metrics.recall_answered(self.log.subjects.swarm, time.perf_counter() - started)
                body: dict[str, Any] = {"ok": True, "result": result}
            except SwarmError as err:
                body = {"ok": False, "error": {"type": type(err).__name__, "message": str(err)}}
            except (ValueError, TypeError, KeyError) as err:
                body = {
                    "ok": False,
                    "error": {"type": "BadRequest", "message": f"bad request: {err}"},
                }
            except Exception as err:
                log.exception("api_error", op=op)
                body = {"ok": False, "error": {"type": "InternalError", "message": str(err)}}
        if msg.reply and may_answer_to(self.log.subjects.swarm, requester, msg.reply):
            await self.log.nc.publish(msg.reply, json.dumps(body, default=str).encode())

    async def _run(self, op: str, req: dict[str, Any]) -> Any:
        if op in GATE_OPERATIONS:
            return await self._gate_op(op, req, req.get("requester"))
        views = self.views
        if views is None:  # pragma: no cover - such a process does not subscribe
            raise SwarmError(f"this process does not serve {op}")
        if op == "audit":
            return await self._audit(views, req, req.get("requester"))
        if op == "erase_plan":
            await self._must_be_admin(req.get("requester"), "plan an erasure")
            # The plan reads DuckDB (every version's text): let it reach the log's end.
            await views.wait_for(await self.log.last_seq(), MAX_WAIT, durable=True)
            about = req.get("about")
            return await views.erase_plan(
                [str(m) for m in req.get("memories") or []],
                about=str(about) if about else None,
                mentions=bool(req.get("mentions", True)),
            )
        if req.get("after") is None:
            return await self._read(views, op, req)
        with views.read_after(int(req["after"])):  # the projector lets this read go first
            return await self._read(views, op, req)

    async def _must_be_admin(self, requester: Any, what: str) -> None:
        if requester != ADMIN and await self._secured():
            raise Forbidden(f"only the admin may {what} (use the admin credentials)")

    async def _audit(self, views: Views, req: dict[str, Any], requester: Any) -> Any:
        """Who did what, when, under which laws (events in log order, no content)."""
        agent = req.get("agent")
        if requester != ADMIN and await self._secured():
            agent = requester  # an agent audits its own events; the admin anyone's
        since_seq, since_time = since_bounds(req.get("since"))
        rows = await views.audit(
            agent=None if agent is None else str(agent),
            since_seq=since_seq,
            since_time=since_time,
            limit=max(1, min(int(req.get("limit", 1000)), 10_000)),
        )
        return {"events": rows}

    async def _read(self, views: Views, op: str, req: dict[str, Any]) -> Any:
        after = req.get("after")
        wait = min(float(req.get("timeout", 10.0)), MAX_WAIT)
        if after is not None:
            await views.wait_for(int(after), wait)
        if op == "tail" and after is None:
            # A tail shows the log as it is now: let the projection reach its end first
            # (bounded: a busy log still answers, with what is projected).
            with contextlib.suppress(Timeout):
                await views.wait_for(await self.log.last_seq(), min(wait, 5.0), durable=True)
        if op in ("history", "tail", "memories"):
            # History reads DuckDB's version table: let everything readers can already
            # see be committed first, so history never lags a `get` made just before.
            await views.wait_for(max(int(after or 0), views.visible_seq), wait, durable=True)
        requester = req.get("requester")
        as_of = None if req.get("as_of") is None else await self._as_of(views, req["as_of"], wait)
        if op == "get":
            found = await views.get(str(req["id"]), requester, as_of=as_of)
            if found is None:
                raise NotFound(f"no memory {req['id']}")
            return found if as_of is None else {**found, "as_of": as_of}
        if op == "history":
            versions = await views.history(str(req["id"]), requester)
            if versions is None:
                raise NotFound(f"no memory {req['id']}")
            return {"id": req["id"], "versions": versions}
        if op == "recall":
            tags = req.get("tags") or []
            return {
                "results": await views.recall(
                    str(req["query"]),
                    k=max(1, min(int(req.get("k", 10)), 1000)),
                    requester=requester,
                    agent=req.get("agent"),
                    kind=req.get("kind"),
                    tags=[str(t) for t in tags],
                    as_of=as_of,
                )
            } | ({} if as_of is None else {"as_of": as_of})
        if op == "status":
            return await self._status(views)
        if op == "rejections":
            limit = max(1, min(int(req.get("limit", 100)), 1000))
            # Open swarm: no identities to tell apart, every reader sees every refusal.
            own = requester if requester != ADMIN and await self._secured() else None
            rows = await views.rejections(int(req.get("since", 0)), limit, own)
            # "law": the law id, or the built-in check that refused (the CLI contract's name).
            return {"rejections": [{**r, "law": r["check"]} for r in rows]}
        if op == "tail":
            limit = max(1, min(int(req.get("limit", 500)), 1000))
            rows = await views.tail(int(req.get("since", 0)), limit, str(requester))
            return {"events": rows}
        if op == "memories":
            agent = req.get("agent")
            rows = await views.memories(
                None if agent is None else str(agent),
                after_seq=int(req.get("after_seq", 0)),
                limit=max(1, min(int(req.get("limit", 500)), 1000)),
                requester=str(requester),
                forgotten=bool(req.get("forgotten", False)),
            )
            return {"memories": rows}
        raise SwarmError(f"unknown operation {op}")

    async def _as_of(self, views: Views, value: Any, wait: float) -> int:
        """The log sequence ``as_of`` names (a seq, or a time: the last seq accepted at
        or before it), once DuckDB has applied it (as-of reads use its version table)."""
        point = parse_as_of(value)
        last = await self.log.last_seq()
        if isinstance(point, int):
            if point > last:
                raise ConfigError(f"as_of seq {point} is beyond the end of the log (seq {last})")
            await views.wait_for(point, wait, durable=True)
            return point
        await views.wait_for(views.visible_seq, wait, durable=True)
        seq = await views.seq_at(point)
        if seq >= views.projected_seq and views.projected_seq < last:  # maybe later still
            await views.wait_for(last, wait, durable=True)
            seq = await views.seq_at(point)
        return seq

    async def _status(self, views: Views) -> dict[str, Any]:
        s = self.log.subjects
        # Let an in-flight commit land, so the counts agree with projected_seq.
        with contextlib.suppress(Timeout):
            await views.wait_for(views.visible_seq, 5.0, durable=True)
        projected = views.projected_seq
        vitals = await metrics.log_vitals(self.log, projected)
        counts = await views.counts()
        accepted, refusals = await views.ingest_counts()
        return {
            "swarm": s.swarm,
            "log_seq": vitals.log_seq,
            "projected_seq": projected,
            "lag": vitals.lag,
            "memories": counts.get("memories", 0),
            "forgotten": counts.get("forgotten", 0),
            "rejected": vitals.rejected,
            "inbox": vitals.inbox,
            "pending_approvals": counts.get("pending_approvals", 0),
            # The same numbers as the metrics (swarm.metrics), for `swarm status` / `top`:
            "lag_seconds": vitals.lag_seconds,
            "proposed": vitals.proposed,
            "accepted": accepted,
            "rejections_by_law": refusals,
            "recall_latency_ms": metrics.recall_percentiles(s.swarm),
            "stream_bytes": vitals.stream_bytes,
        }

    async def _gate_op(self, op: str, req: dict[str, Any], requester: str | None) -> Any:
        gate = self.gate
        if gate is None:
            raise SwarmError("this service runs no gate; writers must use a service with one")
        if op == "doc":
            return await self._doc(gate, str(req["id"]), requester)
        if op == "keys":
            if not requester or requester == ADMIN:
                raise Forbidden("keys are issued to agents (the writers of memories)")
            about = req.get("about") or []
            return {
                "keys": await gate.issue_keys(
                    [str(m) for m in req.get("memories") or []],
                    agent=str(requester),
                    about=[str(a) for a in about],
                )
            }
        if op == "erase":
            await self._must_be_admin(requester, "erase memories")
            about = req.get("about")
            return await gate.erase(
                [str(m) for m in req.get("memories") or []],
                principal=str(requester or ADMIN),
                reason=str(req.get("reason") or ""),
                about=str(about) if about else None,
            )
        await asyncio.wait_for(gate.ready.wait(), MAX_WAIT)
        if op == "approvals":
            status = str(req.get("status") or "pending")
            return {"proposals": gate.proposals.rows(None if status == "all" else status)}
        if op in ("approve", "deny"):
            if not requester:
                raise SwarmError("a decision needs a requester (the deciding principal)")
            reason = req.get("reason")
            return await gate.decide(
                str(req["proposal"]),
                principal=str(requester),
                approve=op == "approve",
                reason=str(reason) if reason else None,
            )
        if op == "rollback":
            to = str(req["to"])
            to_seq = int(to) if to.isdigit() else await self.log.seq_at(parse_time(to))
            spec = RollbackSpec(
                to_seq=to_seq,
                scope=req.get("scope") or "swarm",
                memory_id=req.get("memory_id"),
                agent=req.get("agent"),
                reason=str(req.get("reason") or ""),
            )
            return await gate.propose_rollback(spec, principal=str(requester))
        if op == "laws":
            return gate.law_rows()
        return {"history": gate.book.history_rows()}

    async def _doc(self, gate: GateWorker, memory_id: str, requester: str | None) -> dict[str, Any]:
        history = await gate.history(memory_id)
        state = history.doc.state()
        if state is None or (state.private and requester not in (state.agent, ADMIN)):
            raise NotFound(f"no memory {memory_id}")
        return {
            "id": memory_id,
            "doc": base64.b64encode(history.doc.save()).decode(),
            "seq": max(history.event_seqs.values(), default=0),
            "key": gate.key_for(memory_id),  # to seal a new content with (None: plain text)
            "erased": gate.erased(memory_id),
        }


async def wait_until(
    condition: asyncio.Condition, predicate: Any, timeout: float, what: str
) -> None:
    """Wait on ``condition`` for ``predicate()``; Timeout names ``what``."""
    async with condition:
        try:
            await asyncio.wait_for(condition.wait_for(predicate), timeout)
        except TimeoutError:
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}") from None
