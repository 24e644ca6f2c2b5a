"""The gate service: the only writer of the log.

Pulls proposals from the INBOX in batches, decides each with :class:`Gate`
(in order, so two edits of one memory in a batch build on each other),
appends the accepted ones to the LOG with pipelined, individually checked
publishes, records refusals in REJECTED, answers each writer with a receipt
or a typed error, and only then acknowledges the inbox messages.

A crash anywhere is safe: unacknowledged proposals are redelivered, and an
event already in the log is recognised by its id (the LOG dedup window, and
the memory's history) and answered with its original sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog
from nats.aio.msg import Msg
from opentelemetry import trace

from swarm import telemetry
from swarm.codec import decode_log_record, encode
from swarm.errors import Rejected, SchemaError
from swarm.events import MemoryEvent, RejectionRecord
from swarm.gate import Accepted, Duplicate, Gate, MemoryHistory, RateLimiter
from swarm.identity import AgentEntry
from swarm.jetstream import Closed, JetStreamLog

__all__ = ["EVENT_ID_HEADER", "REPLY_HEADER", "GateWorker"]

log = structlog.get_logger(__name__)

#: Header naming the subject a writer waits on for its receipt.
REPLY_HEADER = "Swarm-Reply"
#: Header repeating the event id, so even an unparseable proposal can be answered.
EVENT_ID_HEADER = "Swarm-Event-Id"


@dataclass
class _Item:
    msg: Msg
    agent: str | None
    instance: str | None
    event: MemoryEvent | None = None
    accepted: Accepted | None = None
    seq: int | None = None
    duplicate: bool = False
    error: Rejected | None = None
    retry: bool = False


class GateWorker:
    def __init__(
        self, log: JetStreamLog, gate: Gate, *, batch: int = 256, cache_size: int = 50_000
    ) -> None:
        self.log = log
        self.gate = gate
        self.batch = batch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, MemoryHistory] = OrderedDict()
        self.accepted = 0
        self.rejected = 0
        # Every memory id the log holds, learnt once at start and kept up to date;
        # None until then (a lookup per new memory is the fallback).
        self._known_ids: set[str] | None = None
        # True once the swarm has a registered agent: from then on envelopes must be signed.
        self._secured = False
        self._rate = RateLimiter(gate.limits.rate_per_instance, gate.limits.rate_burst)

    # -- memory histories -----------------------------------------------------------------

    async def load_history(self, memory_id: str) -> MemoryHistory:
        """What the log holds of one memory (for a cache miss or a reader)."""
        history = MemoryHistory()
        for stored in await self.log.read_memory(memory_id):
            record = decode_log_record(stored.data)
            history.doc, _ = history.doc.apply(record.event.change, strict=False)
            history.event_seqs[record.event.id] = stored.seq
        return history

    async def history(self, memory_id: str) -> MemoryHistory:
        """The current history of a memory, for readers: never stored in the cache."""
        cached = self._cache.get(memory_id)
        return cached if cached is not None else await self.load_history(memory_id)

    async def _cached(self, memory_id: str, *, new: bool) -> MemoryHistory:
        history = self._cache.get(memory_id)
        if history is not None:
            self._cache.move_to_end(memory_id)
            return history
        if new and not await self._exists(memory_id):
            history = MemoryHistory()
        else:
            history = await self.load_history(memory_id)
        self._remember(memory_id, history)
        return history

    async def _exists(self, memory_id: str) -> bool:
        if self._known_ids is not None:
            return memory_id in self._known_ids
        return await self.log.memory_exists(memory_id)

    def _remember(self, memory_id: str, history: MemoryHistory) -> None:
        self._cache[memory_id] = history
        self._cache.move_to_end(memory_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.log.subjects
        sub = await self.log.durable_pull(
            stream=s.inbox_stream,
            durable="gate",
            filter_subject=s.inbox_all,
            start_seq=1,
            ack_all=False,
        )
        self._known_ids = await self.log.memory_ids()
        log.info(
            "gate_started",
            swarm=self.gate.swarm,
            law_set=self.gate.laws.version,
            memories=len(self._known_ids),
        )
        try:
            while not stop.is_set():
                msgs = await self.log.fetch(sub, self.batch, 0.5)
                if msgs:
                    await self.process(msgs)
        except Closed:
            return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def process(self, msgs: list[Msg]) -> None:
        registry = await self._registry(msgs)
        items = [self._parse(msg, registry) for msg in msgs]
        await self._preload(items)
        self._decide(items)
        await self._append(items)
        await self._record_rejections(items)
        await self._answer(items)

    async def _registry(self, msgs: list[Msg]) -> dict[str, AgentEntry] | None:
        """The registry entries of this batch's agents, read afresh (a revocation takes
        effect at the next batch); None while no agent is registered (open mode)."""
        if not self._secured:
            self._secured = await self.log.has_agents()
            if not self._secured:
                return None
        names = {ident[0] for m in msgs if (ident := self.log.subjects.parse_inbox(m.subject))}
        found = await asyncio.gather(*(self.log.get_agent(name) for name in names))
        return {entry.agent: entry for entry in found if entry is not None}

    def _parse(self, msg: Msg, registry: dict[str, AgentEntry] | None) -> _Item:
        ident = self.log.subjects.parse_inbox(msg.subject)
        agent, instance = ident if ident else (None, None)
        item = _Item(msg=msg, agent=agent, instance=instance)
        if ident is None:
            item.error = SchemaError(f"not an inbox subject: {msg.subject}")
            return item
        if not self._rate.allow(ident, time.monotonic()):
            lim = self.gate.limits
            item.error = Rejected(
                f"{ident[0]}@{ident[1]} proposes more than {lim.rate_per_instance:g} events/s "
                f"(burst {lim.rate_burst:g}): slow down and retry",
                check="rate",
            )
            return item
        try:
            item.event = self.gate.parse(msg.data, ident[0], ident[1], registry=registry)
        except Rejected as err:
            item.error = err
        return item

    async def _preload(self, items: list[_Item]) -> None:
        wanted: dict[str, bool] = {}
        for item in items:
            if item.event is not None and item.event.memory_id not in self._cache:
                new = item.event.type_name == "memory.remembered"
                wanted[item.event.memory_id] = wanted.get(item.event.memory_id, True) and new
        if wanted:
            await asyncio.gather(*(self._cached(mid, new=new) for mid, new in wanted.items()))

    def _decide(self, items: list[_Item]) -> None:
        overlay: dict[str, MemoryHistory] = {}
        for item in items:
            event = item.event
            if event is None:
                continue
            history = overlay.get(event.memory_id) or self._cache.get(event.memory_id)
            if history is None:  # evicted between preload and now: decide on the log's view later
                item.retry = True
                continue
            ctx = telemetry.extract(item.msg.headers)
            with telemetry.tracer.start_as_current_span(
                "gate.check",
                context=ctx,
                attributes=telemetry.attrs(event_id=event.id, type=event.type_name),
            ) as span:
                try:
                    decision = self.gate.judge(event, history)
                except Rejected as err:
                    item.error = err
                    span.add_event("rejected", {"check": err.check, "reason": err.reason})
                    span.set_status(trace.StatusCode.ERROR, err.check)
                    continue
                if isinstance(decision, Duplicate):
                    item.seq, item.duplicate = decision.seq, True
                    continue
                for result in decision.record.verdict.results:
                    span.add_event("law", {"law": result.law, "verdict": result.verdict})
                item.accepted = decision
                overlay[event.memory_id] = MemoryHistory(
                    doc=decision.doc, event_seqs={**history.event_seqs, event.id: 0}
                )

    async def _append(self, items: list[_Item]) -> None:
        todo = [i for i in items if i.accepted is not None]
        if not todo:
            return
        s = self.log.subjects
        batch = []
        for item in todo:
            assert item.accepted is not None and item.event is not None
            headers = {"Nats-Msg-Id": item.event.id, "Swarm-Type": item.event.type_name}
            for key in ("traceparent", "tracestate"):
                if item.msg.headers and key in item.msg.headers:
                    headers[key] = item.msg.headers[key]
            batch.append(
                (
                    s.log(item.event.agent, item.event.memory_id),
                    encode(item.accepted.record),
                    headers,
                )
            )
        results = await self.log.append_many(batch)
        for item, result in zip(todo, results, strict=True):
            assert item.event is not None and item.accepted is not None
            mid = item.event.memory_id
            if result.seq is None:
                log.warning("log_append_failed", event_id=item.event.id, error=str(result.error))
                item.retry = True
                self._cache.pop(mid, None)  # rebuild from the log on redelivery
                continue
            item.seq, item.duplicate = result.seq, result.duplicate
            if self._known_ids is not None:
                self._known_ids.add(mid)
            history = self._cache.get(mid)
            if history is not None:
                history.doc = item.accepted.doc
                history.event_seqs[item.event.id] = result.seq
            else:
                self._remember(mid, MemoryHistory(item.accepted.doc, {item.event.id: result.seq}))
            self.accepted += 1

    async def _record_rejections(self, items: list[_Item]) -> None:
        todo = [i for i in items if i.error is not None]
        if not todo:
            return
        batch = []
        for item in todo:
            assert item.error is not None
            record: RejectionRecord = Gate.rejection(
                item.error,
                event=item.event,
                event_id=_header_id(item.msg),
                agent=item.agent,
                instance=item.instance,
            )
            subject = self.log.subjects.rejected(item.agent or "unknown")
            # Keyed by the proposal's INBOX sequence: a redelivery dedups, distinct
            # proposals never do (their event ids may be missing or forged).
            dedup = f"rej-{item.msg.metadata.sequence.stream}"
            batch.append((subject, encode(record), {"Nats-Msg-Id": dedup}))
            log.info(
                "rejected",
                event_id=record.event_id,
                agent=record.agent,
                check=record.check,
                reason=record.reason,
            )
        for item, result in zip(todo, await self.log.append_many(batch), strict=True):
            if result.seq is None:  # keep it in the inbox; the verdict will be the same next time
                item.retry = True
            else:
                self.rejected += 1

    async def _answer(self, items: list[_Item]) -> None:
        nc = self.log.nc
        for item in items:
            if item.retry:
                await item.msg.nak(delay=0.5)
                continue
            reply = (item.msg.headers or {}).get(REPLY_HEADER)
            if reply:
                await nc.publish(reply, json.dumps(self._receipt(item)).encode())
            await item.msg.ack()

    @staticmethod
    def _receipt(item: _Item) -> dict[str, Any]:
        event_id = item.event.id if item.event is not None else _header_id(item.msg)
        if item.error is not None:
            err = item.error
            return {
                "ok": False,
                "event_id": event_id,
                "error": {
                    "check": err.check,
                    "kind": "law" if err.__class__.__name__ == "LawViolation" else "check",
                    "reason": err.reason,
                    "where": getattr(err, "where", None),
                },
            }
        assert item.event is not None
        flags = []
        if item.accepted is not None:
            flags = [r.model_dump() for r in item.accepted.record.verdict.flags]
        return {
            "ok": True,
            "id": item.event.memory_id,
            "event_id": item.event.id,
            "seq": item.seq,
            "duplicate": item.duplicate,
            "flags": flags,
        }


def _header_id(msg: Msg) -> str:
    return (msg.headers or {}).get(EVENT_ID_HEADER, "unknown")
