"""The gate service: the only writer of the log.

Pulls proposals from the INBOX in batches, decides each with :class:`Gate`
(in order, so two edits of one memory in a batch build on each other),
appends the accepted ones to the LOG with pipelined, individually checked
publishes, records refusals in REJECTED, answers each writer with a receipt
or a typed error, and only then acknowledges the inbox messages.

A crash anywhere is safe: unacknowledged proposals are redelivered, and an
event already in the log is recognised by its id (the LOG dedup window, and
the memory's history) and answered with its original sequence.

It also keeps the swarm's system records (see :mod:`swarm.approvals` and
:mod:`swarm.laws.book`): at start it reads them, records the law set it will
enforce when that differs from the log's, and from then on holds events that
``require_approval`` laws ask about, decides them when a principal does, and
expires them when their time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from nats.aio.msg import Msg
from opentelemetry import trace

from swarm import metrics, telemetry
from swarm.approvals import Decision, ProposalBook, ProposalState, authorise
from swarm.auth import may_answer_to
from swarm.chain import Head, digest, link
from swarm.codec import decode_log_record, decode_system_record, encode
from swarm.crdt import MemoryDoc, new_actor
from swarm.errors import ConfigError, Forbidden, NotFound, Rejected, SchemaError, SwarmError
from swarm.events import (
    GATE_WRITER,
    LawEnacted,
    LawRepealed,
    LawResult,
    LogRecord,
    MemoryErased,
    MemoryEvent,
    MemoryRemembered,
    MemoryRestored,
    ProposalDecided,
    ProposalOpened,
    RejectionRecord,
    RollbackSpec,
    SystemRecord,
    Verdict,
    new_id,
    utcnow,
)
from swarm.gate import Accepted, Duplicate, Gate, Held, MemoryHistory, RateLimiter
from swarm.identity import AgentEntry
from swarm.jetstream import Appended, Closed, JetStreamLog
from swarm.keystore import Keystore, key_id_of_or_none
from swarm.laws import LawSpec, build_law_set
from swarm.laws.base import Related
from swarm.laws.book import LawBook
from swarm.rollback import Version, compensate, target

__all__ = ["EVENT_ID_HEADER", "REPLY_HEADER", "GateWorker"]

log = structlog.get_logger(__name__)

_MEMORY_ID = re.compile(r"^[0-9A-Za-z_-]{8,64}$")

#: Header naming the subject a writer waits on for its receipt.
REPLY_HEADER = "Swarm-Reply"
#: Header repeating the event id, so even an unparseable proposal can be answered.
EVENT_ID_HEADER = "Swarm-Event-Id"
#: How long a held proposal waits for a decision before it expires.
APPROVAL_TTL = 7 * 86_400.0
#: Who the law records name when `swarm up` enacts a law file.
OPERATOR = "operator"
#: One log entry to append: subject, record, headers.
Entry = tuple[str, LogRecord | SystemRecord, dict[str, str]]
#: How many similar memories a contradiction check compares a write with.
RELATED_K = 5


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
    held: Held | None = None
    waiting: ProposalState | None = None  # an earlier proposal of this event, still pending
    related: tuple[Related, ...] = ()
    span: trace.SpanContext | None = None  # its gate.check span, parent of its log.append


class GateWorker:
    """The gate's I/O loop.

    ``law_specs``: the laws to enforce, recorded in the log at start when they
    differ from the log's (`swarm up --laws FILE`). None: the laws the log
    records, or the gate's own law set on a first start. A law set made of law
    objects in code (no specs) runs as given and is not recorded.
    """

    def __init__(
        self,
        log: JetStreamLog,
        gate: Gate,
        *,
        batch: int = 256,
        cache_size: int = 50_000,
        law_specs: Sequence[LawSpec] | None = None,
        approval_ttl: float = APPROVAL_TTL,
    ) -> None:
        self.log = log
        self.gate = gate
        self.batch = batch
        self.cache_size = cache_size
        self.law_specs = list(law_specs) if law_specs is not None else None
        self.approval_ttl = approval_ttl
        self.book = LawBook()
        self.proposals = ProposalBook()
        #: Set once the system records are read and the law set is settled.
        self.ready = asyncio.Event()
        self._lock = asyncio.Lock()  # one writer of the log at a time: batches, decisions
        self._head: Head | None = None  # the log's last entry; None: read it before appending
        self._actor = new_actor(gate.swarm, GATE_WRITER, "rollback")  # writes compensations
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
        await self._load_system_records()
        await self._settle_laws()
        self.ready.set()
        log.info(
            "gate_started",
            swarm=self.gate.swarm,
            law_set=self.gate.laws.version,
            memories=len(self._known_ids),
            pending_proposals=len(self.proposals.pending()),
        )
        next_expiry_check = 0.0
        try:
            while not stop.is_set():
                msgs = await self.log.fetch(sub, self.batch, 0.5)
                try:
                    if msgs:
                        await self.process(msgs)
                except (SwarmError, TimeoutError) as err:
                    # JetStream hiccup (a leader election, a slow ack): nothing was
                    # acknowledged that is not in the log, so hand the batch back and retry.
                    log.error("gate_retry", error=str(err), batch=len(msgs))
                    self._head = None
                    for msg in msgs:
                        with contextlib.suppress(Exception):
                            await msg.nak(delay=1.0)
                    await asyncio.sleep(1.0)
                    continue
                if time.monotonic() >= next_expiry_check:
                    try:
                        await self.expire()
                    except (SwarmError, TimeoutError) as err:  # tried again in a second
                        log.error("expiry_retry", error=str(err))
                    next_expiry_check = time.monotonic() + 1.0
                    pending = len(self.proposals.pending())
                    metrics.observe(metrics.APPROVALS_PENDING, pending, swarm=self.gate.swarm)
        except Closed:
            return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def process(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        async with self._lock:
            registry = await self._registry(msgs)
            items = [self._parse(msg, registry) for msg in msgs]
            await self._preload(items)
            if self.gate.laws.needs_related:
                await self._find_related(items)
            self._decide(items)
            await self._append(items)
            await self._record_rejections(items)
            await self._answer(items)
        metrics.gate_batch(self.gate.swarm, len(msgs), time.perf_counter() - started)

    # -- system records: laws and proposals -------------------------------------------

    async def _load_system_records(self) -> None:
        async for batch in self.log.read(filter_subject=self.log.subjects.sys_all):
            for stored in batch:
                self._apply_system(stored.seq, decode_system_record(stored.data))

    def _apply_system(self, seq: int, record: SystemRecord) -> None:
        if isinstance(record, LawEnacted | LawRepealed):
            self.book.apply(seq, record)
        elif isinstance(record, MemoryErased):
            # Idempotent: at start the log's erasures are re-applied (a crash after the
            # record was written and before the keys were destroyed is finished here).
            if self.gate.keys is not None:
                self.gate.keys.destroy(record.memories, record=record.id)
        else:
            self.proposals.apply(seq, record)

    async def _append_system(self, subject: str, record: SystemRecord, msg_id: str) -> int:
        headers = {"Nats-Msg-Id": msg_id, "Swarm-Type": record.type}
        [result] = await self._append_chained([(subject, record, headers)])
        if result.seq is None:
            raise SwarmError(f"could not write {record.type} to the log: {result.error}")
        if not result.duplicate:
            self._apply_system(result.seq, record)
        return result.seq

    async def _append_chained(self, entries: list[Entry]) -> list[Appended]:
        """Append log entries in order, each naming the hash of the one before it.

        Each publish carries the sequence it must follow (JetStream refuses it
        otherwise), so an entry never lands out of its chain. After any failure or
        duplicate the head is read back from the log, the only truth.
        """
        if self._head is None:
            self._head = await self._read_head()
        datas, expected, after = link([record for _, record, _ in entries], self._head)
        batch = [
            (subject, data, {**headers, "Nats-Expected-Last-Sequence": str(seq)})
            for (subject, _, headers), data, seq in zip(entries, datas, expected, strict=True)
        ]
        results = await self.log.append_many(batch)
        clean = all(r.seq is not None and not r.duplicate for r in results)
        self._head = after if clean else None
        return results

    async def _read_head(self) -> Head:
        last = await self.log.last_entry()
        return Head() if last is None else Head(last.seq, digest(last.data))

    async def _settle_laws(self) -> None:
        """Enforce the wanted law set, recording it in the log first if it changed."""
        given = self.gate.laws.specs
        if given is None and self.law_specs is None:
            return  # law objects made in code: run as given
        wanted = self.law_specs
        if wanted is None:
            wanted = (
                self.book.specs if self.book else [s for s in given or () if isinstance(s, LawSpec)]
            )
        law_set = build_law_set(wanted, allow_approval=True)
        for record in self.book.changes_to(wanted, version=law_set.version, by=OPERATOR):
            await self._append_system(self.log.subjects.sys("laws"), record, record.id)
        self.gate.laws = law_set

    def law_rows(self) -> dict[str, Any]:
        """The laws in force (`swarm laws list`)."""
        rows = (
            self.book.rows()
            if self.book
            else [
                {"id": law.id, "description": law.description, "action": law.action}
                for law in self.gate.laws.laws
            ]
        )
        return {"law_set": self.gate.laws.version, "laws": rows}

    async def expire(self) -> int:
        """Close every pending proposal whose time is up. Returns how many."""
        if not self.proposals.pending():
            return 0
        async with self._lock:
            due = self.proposals.expired(utcnow())
            for state in due:
                await self._close(state, "expired", by="gate", reason="no decision in time")
        return len(due)

    async def _close(
        self,
        state: ProposalState,
        decision: Decision,
        *,
        by: str,
        reason: str | None,
        event_seq: int | None = None,
    ) -> ProposalDecided:
        opened = state.opened
        record = ProposalDecided(
            id=_derived_id("decided", state.id),  # one decision per proposal, whatever retries
            proposal=state.id,
            memory_id=opened.event.memory_id
            if opened.event is not None
            else (opened.rollback.memory_id if opened.rollback else None),
            decision=decision,
            by=by,
            reason=reason,
            event_seq=event_seq,
        )
        subject = self.log.subjects.sys("proposals", state.id)
        await self._append_system(subject, record, record.id)
        log.info("proposal_decided", proposal=state.id, decision=decision, by=by)
        return record

    async def decide(
        self, proposal: str, *, principal: str, approve: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """Approve or deny a held proposal as ``principal``; returns its row.

        Approval judges the event again against the memory as it is now (it may
        have changed meanwhile) with the laws in force, the approval standing in
        for the laws that asked for it; if it no longer applies, the proposal is
        closed as ``failed`` with the reason.
        """
        await asyncio.wait_for(self.ready.wait(), 30)
        async with self._lock:
            state = self.proposals.get(proposal)
            if state is None:
                raise NotFound(f"no proposal {proposal}")
            if state.decided is not None:
                if state.decided.by == principal and state.status == (
                    "approved" if approve else "denied"
                ):
                    return state.row()  # a retry of this very decision: the same answer
                raise SwarmError(
                    f"proposal {proposal} is already {state.status} (by {state.decided.by})"
                )
            secured = await self.log.has_agents()
            entry = await self.log.get_agent(principal) if secured else None
            authorise(principal, state, entry=entry, secured=secured)
            if state.opened.expires_at <= utcnow():
                await self._close(state, "expired", by="gate", reason="no decision in time")
                raise SwarmError(f"proposal {proposal} expired at {state.opened.expires_at}")
            if not approve:
                await self._close(state, "denied", by=principal, reason=reason)
                return state.row()
            await self._approve(state, principal, reason)
            return state.row()

    async def _approve(self, state: ProposalState, principal: str, reason: str | None) -> None:
        event = state.opened.event
        if event is None:
            await self._roll_back(state, principal, reason)
            return
        history = await self._cached(event.memory_id, new=isinstance(event, MemoryRemembered))
        try:
            decision = self.gate.judge(event, history, approved_by=principal)
        except Rejected as err:
            await self._close(
                state, "failed", by=principal, reason=f"no longer applies: {err.reason}"
            )
            return
        if isinstance(decision, Duplicate):  # a crash after the event, before the decision
            seq = decision.seq
        elif isinstance(decision, Held):  # pragma: no cover - approved_by stands in for them
            raise SwarmError("the gate held an approved event")
        else:
            subject = self.log.subjects.log(event.agent, event.memory_id)
            headers = {"Nats-Msg-Id": event.id, "Swarm-Type": event.type_name}
            [result] = await self._append_chained([(subject, decision.record, headers)])
            if result.seq is None:
                raise SwarmError(f"could not append the approved event: {result.error}")
            seq = result.seq
            self._adopt(event, decision.doc, seq)
        await self._close(state, "approved", by=principal, reason=reason, event_seq=seq)

    # -- rollback ---------------------------------------------------------------------

    # -- erasure ------------------------------------------------------------------------

    async def issue_keys(
        self, memory_ids: Sequence[str], *, agent: str, about: Sequence[str] = ()
    ) -> list[dict[str, str]]:
        """Keys for an agent's new memories (see swarm.keystore); the agent seals with them."""
        keys = self._keystore()
        if not 1 <= len(memory_ids) <= 1000:
            raise ConfigError("ask for 1..1000 keys at a time")
        bad = [m for m in memory_ids if not _MEMORY_ID.match(str(m))]
        if bad:
            raise ConfigError(f"not a memory id: {bad[0]!r}")
        for mid in memory_ids:
            # An existing memory's key (or a new one, for plain text written before
            # sealing) only for those who may read it: the key opens its content.
            if self._known_ids is not None and mid in self._known_ids:
                state = (await self.history(mid)).doc.state()
                if state is not None and state.private and state.agent != agent:
                    raise Forbidden(f"memory {mid} is private to agent {state.agent}")
        issued = await asyncio.to_thread(keys.issue, list(memory_ids), agent=agent, about=about)
        return [{"memory_id": e.memory_id, **e.wire()} for e in issued]

    def erased(self, memory_id: str) -> bool:
        return self.gate.keys is not None and self.gate.keys.memory_erased(memory_id)

    def key_for(self, memory_id: str) -> dict[str, str] | None:
        keys = self.gate.keys
        entry = keys.key_for(memory_id) if keys is not None else None
        return entry.wire() if entry is not None else None

    async def erase(
        self, memory_ids: Sequence[str], *, principal: str, reason: str, about: str | None = None
    ) -> dict[str, Any]:
        """Destroy the keys of these memories, after writing the tombstone to the log.

        Refuses (nothing erased) if a memory does not exist or holds plain text (it
        could not be erased from the log). Memories already erased are reported.
        """
        keys = self._keystore()
        await asyncio.wait_for(self.ready.wait(), 30)
        if not reason.strip():
            raise ConfigError("an erasure needs a reason (--reason), kept in its tombstone")
        wanted = list(dict.fromkeys(memory_ids))
        if not wanted:
            raise ConfigError("nothing to erase: name memories, or a data subject")
        async with self._lock:
            already = [m for m in wanted if keys.memory_erased(m)]
            todo: list[str] = []
            key_ids: list[str] = []
            for mid in wanted:
                if mid in already:
                    continue
                history = await self.history(mid)
                state = history.doc.state()
                if state is None:
                    raise NotFound(f"no memory {mid}")
                entry = keys.key_for(mid)
                if entry is None or key_id_of_or_none(state.content) is None:
                    raise ConfigError(
                        f"memory {mid} holds plain text (written before content was sealed, or "
                        "around the SDK): the log cannot forget it; nothing was erased"
                    )
                todo.append(mid)
                key_ids.append(entry.key_id)
            if not todo:
                return {"seq": None, "erased": [], "already": already, "keys": 0}
            record = MemoryErased(
                memories=tuple(todo),
                keys=tuple(key_ids),
                reason=reason.strip()[:1000],
                about=about is not None,
                by=principal,
            )
            seq = await self._append_system(self.log.subjects.sys("erased"), record, record.id)
        # _append_system destroyed the keys; a subject's name goes from the keystore too.
        await asyncio.to_thread(keys.destroy, todo, record=record.id, subject=about)
        log.info("erased", memories=len(todo), seq=seq, by=principal)
        return {"seq": seq, "erased": todo, "already": already, "keys": len(key_ids)}

    def _keystore(self) -> Keystore:
        if self.gate.keys is None:
            raise SwarmError("this gate runs without a keystore: content is not sealed")
        return self.gate.keys

    async def propose_rollback(self, spec: RollbackSpec, *, principal: str) -> dict[str, Any]:
        """Open a rollback proposal (a rollback is destructive: a principal decides)."""
        await asyncio.wait_for(self.ready.wait(), 30)
        if spec.scope == "memory" and not spec.memory_id:
            raise ConfigError("a rollback of one memory needs its id (--memory ID)")
        if spec.scope == "agent" and not spec.agent:
            raise ConfigError("a rollback of one agent's writes needs the agent (--agent A)")
        async with self._lock:
            last = await self.log.last_seq()
            if spec.to_seq > last:
                raise ConfigError(f"the log ends at seq {last}: cannot roll back to {spec.to_seq}")
            if spec.memory_id and not await self._exists(spec.memory_id):
                raise NotFound(f"no memory {spec.memory_id}")
            pid = new_id()
            record = ProposalOpened(
                id=_derived_id("opened", pid),
                proposal=pid,
                rollback=spec,
                laws=(
                    LawResult(
                        law="rollback",
                        verdict="pending",
                        reason="a rollback is destructive: a principal decides",
                    ),
                ),
                verdict=Verdict(law_set=self.gate.laws.version),
                expires_at=utcnow() + timedelta(seconds=self.approval_ttl),
                by=principal,
            )
            await self._append_system(self.log.subjects.sys("proposals", pid), record, record.id)
        state = self.proposals.get(pid)
        assert state is not None
        log.info("rollback_proposed", proposal=pid, scope=spec.scope, to_seq=spec.to_seq)
        return state.row()

    async def _roll_back(self, state: ProposalState, principal: str, reason: str | None) -> None:
        """Append the compensating changes of an approved rollback, then its decision."""
        spec = state.opened.rollback
        assert spec is not None
        why = f"rollback {state.id} to seq {spec.to_seq}: {spec.reason}"
        if spec.scope == "memory":
            assert spec.memory_id is not None
            touched = [spec.memory_id]
        else:
            touched = await self._touched_after(
                spec.to_seq, spec.agent if spec.scope == "agent" else None
            )
        entries: list[Entry] = []
        adopt: list[tuple[MemoryRestored, MemoryDoc]] = []
        verdict = Verdict(law_set=self.gate.laws.version, approved_by=principal)
        limit = asyncio.Semaphore(64)  # histories are read concurrently: round trips overlap

        async def versions_of(mid: str) -> tuple[MemoryDoc, list[Version]]:
            async with limit:
                return await self._versions(mid)

        histories = await asyncio.gather(*(versions_of(mid) for mid in touched))
        for mid, (doc, versions) in zip(touched, histories, strict=True):
            if not versions:
                continue
            current = versions[-1].state
            change = compensate(doc, current, target(versions, spec), self._actor, why)
            if change is None:
                continue
            event = MemoryRestored(
                swarm=self.gate.swarm,
                agent=GATE_WRITER,
                instance="rollback",
                actor=self._actor.hex(),
                memory_id=mid,
                change=change,
                reason=why[:1000],
                proposal=state.id,
            )
            restored, _ = doc.apply(change, strict=True)
            headers = {"Nats-Msg-Id": event.id, "Swarm-Type": event.type_name}
            entries.append(
                (
                    self.log.subjects.log(GATE_WRITER, mid),
                    LogRecord(event=event, verdict=verdict),
                    headers,
                )
            )
            adopt.append((event, restored))
        last_seq = None
        for start in range(0, len(entries), 500):
            chunk = entries[start : start + 500]
            results = await self._append_chained(chunk)
            for (event, doc), result in zip(adopt[start : start + 500], results, strict=True):
                if result.seq is None:
                    raise SwarmError(f"could not append the rollback's changes: {result.error}")
                self._adopt(event, doc, result.seq)
                last_seq = result.seq
        log.info("rolled_back", proposal=state.id, memories=len(adopt))
        await self._close(state, "approved", by=principal, reason=reason, event_seq=last_seq)

    async def _touched_after(self, seq: int, agent: str | None) -> list[str]:
        """The memories with events after ``seq`` (by ``agent`` only, if given), in log order."""
        found: dict[str, None] = {}
        subjects = self.log.subjects
        wanted = f"{subjects.log_all[:-1]}{agent}.*" if agent else subjects.log_all
        async for batch in self.log.read(start_seq=seq + 1, filter_subject=wanted):
            for stored in batch:
                found[stored.subject.rsplit(".", 1)[-1]] = None
        return list(found)

    async def _versions(self, memory_id: str) -> tuple[MemoryDoc, list[Version]]:
        """A memory's document now and its state after each of its events."""
        doc = MemoryDoc()
        versions: list[Version] = []
        for stored in await self.log.read_memory(memory_id):
            record = decode_log_record(stored.data)
            doc, _ = doc.apply(record.event.change, strict=False)
            state = doc.state()
            if state is not None:
                versions.append(Version(stored.seq, record.event.agent, state))
        return doc, versions

    def _adopt(self, event: MemoryEvent, doc: Any, seq: int) -> None:
        """An event is in the log at ``seq``: the cached history follows."""
        mid = event.memory_id
        if self._known_ids is not None:
            self._known_ids.add(mid)
        history = self._cache.get(mid)
        if history is not None:
            history.doc = doc
            history.event_seqs[event.id] = seq
        else:
            self._remember(mid, MemoryHistory(doc, {event.id: seq}))

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

    async def _find_related(self, items: list[_Item]) -> None:
        """For laws that compare a write with other memories (contradiction): look up, for
        each new or rewritten content, the memories that read most like it (the
        projection's full-text and vector recall, as the writer may see them)."""

        async def lookup(item: _Item) -> None:
            event = item.event
            if event is None or event.type_name not in ("memory.remembered", "memory.updated"):
                return
            history = self._cache.get(event.memory_id)
            if history is None:
                return
            try:
                doc, _ = history.doc.apply(event.change, strict=False)
                after = doc.state()
            except Rejected:
                return  # the judge will say what is wrong with the change
            if after is None:
                return
            try:
                after = self.gate.opened(event, after)
            except Rejected:
                return
            item.related = await self._recall_related(after.content, event.agent)

        await asyncio.gather(*(lookup(item) for item in items))

    async def _recall_related(self, content: str, agent: str) -> tuple[Related, ...]:
        body = json.dumps({"query": content, "k": RELATED_K}).encode()
        try:
            reply = await self.log.nc.request(
                self.log.subjects.api("recall", agent), body, timeout=2.0
            )
            answer = json.loads(reply.data)
        except Exception as err:  # no projector yet, or slow: judge without related memories
            log.warning("related_lookup_failed", error=repr(err))
            return ()
        if not answer.get("ok"):
            return ()
        return tuple(
            Related(id=r["id"], agent=r["agent"], content=r["content"], kind=r.get("kind", "fact"))
            for r in answer["result"]["results"]
        )

    def _decide(self, items: list[_Item]) -> None:
        overlay: dict[str, MemoryHistory] = {}
        for item in items:
            event = item.event
            if event is None:
                continue
            held = self.proposals.get(event.id)
            if held is not None and held.decided is None:
                item.waiting = held  # a retry of a held proposal: still pending
                continue
            if held is not None and held.status != "approved":
                assert held.decided is not None
                item.error = Rejected(
                    f"proposal {event.id} was {held.status} by {held.decided.by}"
                    + (f": {held.decided.reason}" if held.decided.reason else ""),
                    check="approval",
                )
                continue
            history = overlay.get(event.memory_id) or self._cache.get(event.memory_id)
            if history is None:  # evicted between preload and now: decide on the log's view later
                item.retry = True
                continue
            ctx = telemetry.extract(item.msg.headers)
            with telemetry.tracer.start_as_current_span(
                "gate.check",
                context=ctx,
                kind=trace.SpanKind.CONSUMER,
                attributes=telemetry.attrs(event_id=event.id, type=event.type_name),
            ) as span:
                item.span = span.get_span_context()
                try:
                    decision = self.gate.judge(event, history, related=item.related)
                except Rejected as err:
                    item.error = err
                    span.add_event("rejected", {"check": err.check, "reason": err.reason})
                    span.set_status(trace.StatusCode.ERROR, err.check)
                    continue
                if isinstance(decision, Duplicate):
                    item.seq, item.duplicate = decision.seq, True
                    continue
                if isinstance(decision, Held):
                    span.add_event("held", {"laws": [r.law for r in decision.laws]})
                    item.held = decision
                    continue
                for result in decision.record.verdict.results:
                    span.add_event("law", {"law": result.law, "verdict": result.verdict})
                item.accepted = decision
                overlay[event.memory_id] = MemoryHistory(
                    doc=decision.doc, event_seqs={**history.event_seqs, event.id: 0}
                )

    async def _append(self, items: list[_Item]) -> None:
        await self._hold(items)
        todo = [i for i in items if i.accepted is not None]
        if not todo:
            return
        s = self.log.subjects
        batch: list[Entry] = []
        spans: list[trace.Span] = []
        for item in todo:
            assert item.accepted is not None and item.event is not None
            headers = {"Nats-Msg-Id": item.event.id, "Swarm-Type": item.event.type_name}
            spans.append(telemetry.start_append(item.span, item.msg.headers, headers))
            batch.append(
                (s.log(item.event.agent, item.event.memory_id), item.accepted.record, headers)
            )
        results = await self._append_chained(batch)
        for item, result, span in zip(todo, results, spans, strict=True):
            assert item.event is not None and item.accepted is not None
            telemetry.finish_append(span, result.seq, duplicate=result.duplicate)
            mid = item.event.memory_id
            if result.seq is None:
                log.warning("log_append_failed", event_id=item.event.id, error=str(result.error))
                item.retry = True
                self._cache.pop(mid, None)  # rebuild from the log on redelivery
                continue
            item.seq, item.duplicate = result.seq, result.duplicate
            self._adopt(item.event, item.accepted.doc, result.seq)
            self.accepted += 1
            if not result.duplicate:
                metrics.accepted(self.gate.swarm, item.event.type_name)

    async def _hold(self, items: list[_Item]) -> None:
        """Write a ``proposal.opened`` record for each held event (the memory is untouched)."""
        todo = [i for i in items if i.held is not None]
        if not todo:
            return
        expires = utcnow() + timedelta(seconds=self.approval_ttl)
        batch: list[Entry] = []
        records = []
        for item in todo:
            assert item.held is not None
            event = item.held.event
            record = ProposalOpened(
                id=_derived_id("opened", event.id),  # the Nats-Msg-Id: a retried hold dedups
                proposal=event.id,
                event=event,
                laws=item.held.laws,
                verdict=item.held.verdict,
                expires_at=expires,
                by=event.agent,
            )
            records.append(record)
            headers = {"Nats-Msg-Id": record.id, "Swarm-Type": record.type}
            batch.append((self.log.subjects.sys("proposals", event.id), record, headers))
        for item, record, result in zip(
            todo, records, await self._append_chained(batch), strict=True
        ):
            if result.seq is None:
                item.retry = True
                continue
            if not result.duplicate:
                self.proposals.apply(result.seq, record)
            item.waiting = self.proposals.get(record.proposal)
            log.info("held", proposal=record.proposal, laws=[r.law for r in record.laws])

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
                **telemetry.log_ids(item.msg.headers),
            )
        for item, result in zip(todo, await self.log.append_many(batch), strict=True):
            if result.seq is None:  # keep it in the inbox; the verdict will be the same next time
                item.retry = True
            else:
                self.rejected += 1
                metrics.rejected(self.gate.swarm, item.error.check if item.error else "unknown")

    async def _answer(self, items: list[_Item]) -> None:
        nc = self.log.nc
        for item in items:
            if item.retry:
                await item.msg.nak(delay=0.5)
                continue
            reply = (item.msg.headers or {}).get(REPLY_HEADER)
            if reply and may_answer_to(self.gate.swarm, item.agent or "", reply):
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
        if item.waiting is not None:
            return {
                "ok": True,
                "status": "pending",
                "id": item.event.memory_id,
                "event_id": item.event.id,
                "proposal": item.waiting.id,
                "seq": item.waiting.seq,
                "laws": [r.model_dump() for r in item.waiting.opened.laws],
                "expires_at": item.waiting.opened.expires_at.isoformat(),
            }
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


def _derived_id(prefix: str, event_id: str) -> str:
    """A record id derived from an event id (an event id may be up to 64 characters)."""
    derived = f"{prefix}-{event_id}"
    if len(derived) <= 64:
        return derived
    return f"{prefix}-{hashlib.blake2b(event_id.encode(), digest_size=20).hexdigest()}"


def _header_id(msg: Msg) -> str:
    return (msg.headers or {}).get(EVENT_ID_HEADER, "unknown")
