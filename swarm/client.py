"""The agent SDK: remember, update, reinforce, forget, and read — from any process.

Async first::

    async with await SwarmClient.connect(url, agent="brad", instance="cloud") as memory:
        receipt = await memory.remember("The deploy key rotates on Mondays", tags=["ops"])
        found = await memory.recall("when does the key rotate", after=receipt.seq)

and :class:`SyncSwarmClient` for code that is not async. Each client process
gets a fresh Automerge actor tied to its instance, so restarts never collide.
Writes return a :class:`~swarm.events.Receipt` once the gate has put the event
in the log, or raise the :class:`~swarm.errors.Rejected` subclass that names
the failed check or law.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from swarm import telemetry
from swarm.auth import inbox_prefix
from swarm.codec import encode
from swarm.crdt import MemoryDoc, author, new_actor
from swarm.errors import (
    ConfigError,
    ConnectionFailed,
    Forbidden,
    NotFound,
    SwarmError,
    Timeout,
    rejection_from_wire,
)
from swarm.events import (
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
    Receipt,
    is_valid_name,
    new_id,
    utcnow,
)
from swarm.gatekeeper import REPLY_HEADER
from swarm.identity import Credentials, sign
from swarm.jetstream import JetStreamLog, closed_reason, connect
from swarm.laws.detectors import redact as redact_text
from swarm.sealing import SealError, seal
from swarm.subjects import Subjects
from swarm.timeline import AsOf, as_of_wire, parse_as_of

__all__ = ["SwarmClient", "SyncSwarmClient"]

T = TypeVar("T")
DEFAULT_URL = "nats://127.0.0.1:4222"
#: Events per `tail` request, and the pause between polls when following.
TAIL_PAGE = 500
TAIL_POLL = 0.5
#: Memories per `memories` request.
MEMORIES_PAGE = 500
#: Keys (and memory ids) a writer asks for at once, for the memories it will create.
KEYS_AHEAD = 64


class SwarmClient:
    """One agent instance's connection to a swarm."""

    def __init__(
        self,
        nc: NATS,
        *,
        swarm: str,
        agent: str,
        instance: str,
        timeout: float = 10.0,
        credentials: Credentials | None = None,
    ) -> None:
        for what, value in (("agent", agent), ("instance", instance)):
            if not is_valid_name(value):
                raise ConfigError(
                    f"invalid {what} name {value!r}: use lower-case letters, digits, '-' or '_'"
                )
        if credentials is not None and (credentials.agent, credentials.swarm) != (agent, swarm):
            if credentials.role != "agent" and credentials.agent == agent:
                pass  # the operator's (or service's) key serves every swarm of its server
            else:
                raise ConfigError(
                    f"the credentials are for agent {credentials.agent!r} of swarm "
                    f"{credentials.swarm!r}, not {agent!r} of {swarm!r}"
                )
        self.credentials = credentials
        self.subjects = Subjects(swarm)
        self.log = JetStreamLog(nc, self.subjects)
        self.agent = agent
        self.instance = instance
        self.timeout = timeout
        self.actor = new_actor(swarm, agent, instance)
        self._reply = nc.new_inbox()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._started = False
        #: Keys issued ahead for new memories: (memory id, key id, key), see _new_key.
        self._keys: list[tuple[str, str, bytes]] = []
        self._keys_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str = DEFAULT_URL,
        *,
        swarm: str = "default",
        agent: str,
        instance: str,
        timeout: float = 10.0,
        credentials: Credentials | str | Path | None = None,
    ) -> SwarmClient:
        """Connect as ``agent@instance``. ``credentials`` (an object or the path of the
        file `swarm agents add` wrote; default: the file named by ``SWARM_CREDS``)
        signs every envelope and logs in to NATS: required once the swarm has registered
        agents. Admin credentials read everything (as ``_admin``) and cannot write."""
        creds = _credentials(credentials)
        nc = await connect(
            url,
            name=f"swarm-client:{agent}@{instance}",
            credentials=creds,
            inbox_prefix=inbox_prefix(swarm, creds.principal) if creds else None,
        )
        try:
            client = cls(
                nc,
                swarm=swarm,
                agent=agent,
                instance=instance,
                timeout=timeout,
                credentials=creds,
            )
        except ConfigError:
            await nc.close()
            raise
        await client._start()
        return client

    @property
    def requester(self) -> str:
        """Who this client reads as: the agent, or ``_admin`` with admin credentials."""
        return self.credentials.principal if self.credentials is not None else self.agent

    async def _start(self) -> None:
        if not self._started:
            await self.log.nc.subscribe(self._reply, cb=self._on_receipt)
            self._started = True

    async def close(self) -> None:
        for fut in self._waiting.values():
            fut.cancel()
        if not self.log.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.log.nc.flush(timeout=2)
            await self.log.nc.close()

    async def __aenter__(self) -> SwarmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- writes ---------------------------------------------------------------------------

    async def remember(
        self,
        content: str,
        *,
        kind: str = "fact",
        tags: Sequence[str] = (),
        importance: float = 0.5,
        private: bool = False,
        memory_id: str | None = None,
        redact: bool = False,
        about: Sequence[str] = (),
    ) -> Receipt:
        """Store a new memory; returns its receipt (``receipt.id`` is the memory id).

        ``memory_id`` lets the caller choose the id (for example to check, after a
        Timeout, whether the write landed); remembering an existing id is refused.
        ``redact``: replace private data in the content and tags with
        ``[REDACTED:<kind>]`` here, before anything is proposed (the gate still checks).
        ``about``: the named data subjects (people) the memory is about, so that
        ``swarm forget --about NAME --erase`` finds it; the names stay in the
        service's keystore, never in the log.

        The content is sealed here with the memory's own key from the service (see
        :mod:`swarm.sealing`): the log only ever holds it encrypted.
        """
        if redact:
            content, tags = redact_text(content), [redact_text(t) for t in tags]
        self._check_writer()
        mid, key_id, key = await self._new_key(memory_id, about)
        with author(MemoryDoc(), self.actor) as (edit, out):
            edit.create(
                memory_id=mid,
                content=seal(content, key_id=key_id, key=key, memory_id=mid),
                kind=kind,
                tags=list(dict.fromkeys(tags)),
                importance=importance,
                agent=self.agent,
                instance=self.instance,
                private=private,
                created_at=utcnow().isoformat(),
            )
        return await self._propose(MemoryRemembered, mid, out)

    def _check_writer(self) -> None:
        if self.credentials is not None and self.credentials.role != "agent":
            raise ConfigError(
                f"{self.credentials.role} credentials cannot write memories: write as an "
                "agent (swarm agents add NAME, then --creds NAME.creds.json)"
            )

    async def _new_key(self, memory_id: str | None, about: Sequence[str]) -> tuple[str, str, bytes]:
        """A memory id and its key: from keys issued ahead (64 per request), or asked
        for on the spot when the caller chose the id or names data subjects."""
        if memory_id is not None or about:
            [issued] = await self._issue([memory_id or new_id()], about)
            return issued
        async with self._keys_lock:
            if not self._keys:
                self._keys = await self._issue([new_id() for _ in range(KEYS_AHEAD)], ())
            return self._keys.pop(0)

    async def _issue(
        self, memory_ids: list[str], about: Sequence[str]
    ) -> list[tuple[str, str, bytes]]:
        reply = await self._request(
            "keys", {"memories": memory_ids, "about": [str(a) for a in about]}
        )
        return [
            (str(k["memory_id"]), str(k["key_id"]), base64.b64decode(k["key"]))
            for k in reply["keys"]
        ]

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
        importance: float | None = None,
        redact: bool = False,
    ) -> Receipt:
        """Replace the content, add or remove tags, change the importance (``redact``: as
        for :meth:`remember`)."""
        if redact:
            content = None if content is None else redact_text(content)
            add_tags = [redact_text(t) for t in add_tags]
        if content is None and not add_tags and not remove_tags and importance is None:
            raise ConfigError("nothing to update: give content, tags to add/remove, or importance")

        def edit_fn(edit: Any) -> None:
            for tag in add_tags:
                edit.add_tag(tag)
            for tag in remove_tags:
                edit.remove_tag(tag)
            if importance is not None:
                edit.set_importance(importance)

        return await self._edit(MemoryUpdated, memory_id, edit_fn, content=content)

    async def reinforce(self, memory_id: str) -> Receipt:
        """Count one more recall or confirmation of the memory."""
        return await self._edit(MemoryReinforced, memory_id, lambda edit: edit.reinforce())

    async def forget(self, memory_id: str, *, reason: str | None = None) -> Receipt:
        """Retire the memory (a tombstone; its history stays in the log)."""
        return await self._edit(
            MemoryForgotten, memory_id, lambda edit: edit.forget(reason), reason=reason
        )

    async def _edit(
        self,
        cls: type[MemoryEvent],
        memory_id: str,
        edit_fn: Callable[[Any], None],
        *,
        content: str | None = None,
        **extra: Any,
    ) -> Receipt:
        self._check_writer()
        lock = self._locks.setdefault(memory_id, asyncio.Lock())
        async with lock:
            reply = await self._request("doc", {"id": memory_id, "requester": self.agent})
            # The gate's copy holds every accepted change, ours included, so the
            # new change continues this actor's sequence numbers.
            doc = MemoryDoc.load(base64.b64decode(reply["doc"]))
            if reply.get("erased"):  # as the gate would say: nothing changes an erased memory
                raise SealError(f"memory {memory_id} was erased: it cannot change")
            sealed = None
            if content is not None:
                key = reply.get("key")
                if key is not None:
                    key_id, raw = str(key["key_id"]), base64.b64decode(key["key"])
                else:  # plain text written before sealing: the memory gets its key now
                    [(_, key_id, raw)] = await self._issue([memory_id], ())
                sealed = seal(content, key_id=key_id, key=raw, memory_id=memory_id)
            with author(doc, self.actor) as (edit, out):
                if sealed is not None:
                    edit.set_content(sealed)
                edit_fn(edit)
            if not out:  # nothing to change: no event; the memory stays at its last seq
                return Receipt(id=memory_id, seq=int(reply["seq"]), event_id="", duplicate=True)
            return await self._propose(cls, memory_id, out, **extra)

    async def _propose(
        self,
        cls: type[MemoryEvent],
        memory_id: str,
        out: list[bytes],
        **extra: Any,
    ) -> Receipt:
        self._check_writer()
        change = out[0]
        event = cls(
            swarm=self.subjects.swarm,
            agent=self.agent,
            instance=self.instance,
            actor=self.actor.hex(),
            memory_id=memory_id,
            change=change,
            **extra,
        )
        if self.credentials is not None:
            event = sign(event, self.credentials)
        data = encode(event)
        loop = asyncio.get_running_loop()
        with telemetry.tracer.start_as_current_span(
            f"swarm.{event.type_name}",
            attributes=telemetry.attrs(event_id=event.id, memory_id=memory_id),
        ):
            for attempt in range(3):
                fut: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._waiting[event.id] = fut
                try:
                    await self._publish(data, event.id)
                    answer = await asyncio.wait_for(fut, self.timeout)
                    break
                except (TimeoutError, Timeout):
                    if attempt == 2:
                        raise Timeout(
                            f"no receipt for event {event.id} (memory {memory_id}) after "
                            f"{3 * self.timeout:.0f}s: is `swarm up` running? The proposal waits "
                            "in the inbox and may still be applied: check get(memory_id) before "
                            "writing again"
                        ) from None
                finally:
                    self._waiting.pop(event.id, None)
        if not answer.get("ok"):
            err = answer.get("error") or {}
            raise rejection_from_wire(
                str(err.get("check", "rejected")),
                str(err.get("reason", "rejected")),
                kind=str(err.get("kind", "check")),
                event_id=event.id,
                where=err.get("where"),
            )
        if answer.get("status") == "pending":
            # The held change is not in the memory yet. Our next change to it must not
            # reuse this actor's sequence number (the held one may be approved later).
            self.actor = new_actor(self.subjects.swarm, self.agent, self.instance)
            return Receipt(
                id=memory_id,
                seq=int(answer["seq"]),
                event_id=event.id,
                status="pending",
                proposal=str(answer["proposal"]),
                flags=tuple(answer.get("laws") or ()),
            )
        return Receipt(
            id=memory_id,
            seq=int(answer["seq"]),
            event_id=event.id,
            duplicate=bool(answer.get("duplicate")),
            flags=tuple(answer.get("flags") or ()),
        )

    async def _publish(self, data: bytes, event_id: str) -> None:
        """Propose to this instance's inbox in a producer span that the gate continues
        (its context travels in the message's ``traceparent`` header)."""
        with telemetry.tracer.start_as_current_span("inbox.publish", kind=SpanKind.PRODUCER):
            headers = telemetry.inject({REPLY_HEADER: self._reply})
            await self.log.propose(
                self.agent, self.instance, data, event_id=event_id, headers=headers
            )

    async def _on_receipt(self, msg: Msg) -> None:
        try:
            answer = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        fut = self._waiting.get(str(answer.get("event_id")))
        if fut is not None and not fut.done():
            fut.set_result(answer)

    # -- reads ----------------------------------------------------------------------------

    async def _request(self, op: str, body: dict[str, Any]) -> Any:
        """One read request in a client span ``swarm.<op>``, which the service's
        ``api.<op>`` span continues."""
        with telemetry.tracer.start_as_current_span(f"swarm.{op}", kind=SpanKind.CLIENT):
            return await self._ask(op, body)

    async def _ask(self, op: str, body: dict[str, Any]) -> Any:
        """One read request (reads are idempotent).

        Rides out a service restart: "no responders" and a lost answer are retried
        with backoff until the client's timeout is spent.
        """
        ctx_headers = telemetry.inject({})
        loop = asyncio.get_running_loop()
        server_wait = float(body.get("timeout", 0))
        deadline = loop.time() + self.timeout + server_wait
        pause = 0.05
        while True:
            remaining = deadline - loop.time()
            try:
                msg = await self.log.nc.request(
                    self.subjects.api(op, self.requester),
                    json.dumps(body).encode(),
                    timeout=max(0.1, min(remaining, server_wait + 3.0)),
                    headers=ctx_headers or None,
                )
                break
            except nats.errors.NoRespondersError:
                if loop.time() + pause > deadline:
                    raise ConnectionFailed(
                        f"no Swarm Memory service answers for swarm {self.subjects.swarm!r}: "
                        "start one with `swarm up`"
                    ) from None
            except nats.errors.TimeoutError:
                if loop.time() + pause > deadline:
                    raise Timeout(
                        f"the service did not answer {op} in {self.timeout + server_wait:.0f}s"
                    ) from None
            except nats.errors.ConnectionClosedError:
                raise ConnectionFailed(closed_reason(self.log.nc, f"read ({op})")) from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        answer = json.loads(msg.data)
        if answer.get("ok"):
            return answer["result"]
        err = answer.get("error") or {}
        kind, message = err.get("type", "SwarmError"), err.get("message", "request failed")
        if kind == "NotFound":
            raise NotFound(message)
        if kind == "Forbidden":
            raise Forbidden(message)
        if kind == "Timeout":
            raise Timeout(message)
        if kind == "ConfigError":
            raise ConfigError(message)
        raise SwarmError(message)

    def _read(
        self, body: dict[str, Any], after: int | None, as_of: AsOf | str | None = None
    ) -> dict[str, Any]:
        body["requester"] = self.agent
        if after is not None:
            body["after"] = after
            body["timeout"] = self.timeout
        if as_of is not None:  # the service may first build a recall snapshot: let it
            body["as_of"] = as_of_wire(parse_as_of(as_of))
            body["timeout"] = self.timeout
        return body

    async def get(
        self, memory_id: str, *, after: int | None = None, as_of: AsOf | str | None = None
    ) -> dict[str, Any]:
        """The memory's current state (NotFound if absent or private to another agent).

        ``as_of``: its state once the log held that sequence, or at that time (a
        datetime or ISO-8601 text: the last sequence accepted then); the answer then
        also names that sequence (``as_of``). NotFound if it did not exist yet.
        """
        body = self._read({"id": memory_id}, after, as_of)
        result: dict[str, Any] = await self._request("get", body)
        return result

    async def history(self, memory_id: str, *, after: int | None = None) -> dict[str, Any]:
        """Every version of the memory: seq, agent, instance, type, time and state."""
        result: dict[str, Any] = await self._request(
            "history", self._read({"id": memory_id}, after)
        )
        return result

    async def recall(
        self,
        query: str,
        *,
        k: int = 10,
        after: int | None = None,
        agent: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] = (),
        as_of: AsOf | str | None = None,
    ) -> list[dict[str, Any]]:
        """Hybrid (semantic + full-text) search over the memories visible to this agent
        (``as_of``: as the swarm would have answered at that sequence or time)."""
        body = {"query": query, "k": k, "agent": agent, "kind": kind, "tags": list(tags)}
        result = await self._request("recall", self._read(body, after, as_of))
        results: list[dict[str, Any]] = result["results"]
        return results

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("status", {})
        return result

    async def rejections(self, *, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Recent refused writes for audit: who, which check or law, why (no content)."""
        result = await self._request("rejections", {"since": since, "limit": limit})
        rows: list[dict[str, Any]] = result["rejections"]
        return rows

    async def audit(
        self, *, agent: str | None = None, since: str | int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Who did what, when, under which laws, in log order (no content). An agent sees
        its own events once the swarm has registered agents; the admin everyone's."""
        body = {"agent": agent, "since": None if since is None else str(since), "limit": limit}
        result = await self._request("audit", body)
        rows: list[dict[str, Any]] = result["events"]
        return rows

    # -- approvals and laws -------------------------------------------------------------

    async def approvals(self, *, status: str = "pending") -> list[dict[str, Any]]:
        """Proposals held for approval (``status``: pending, approved, denied, expired,
        failed, or all)."""
        result = await self._request("approvals", {"status": status, "requester": self.agent})
        rows: list[dict[str, Any]] = result["proposals"]
        return rows

    async def approve(self, proposal: str, *, reason: str | None = None) -> dict[str, Any]:
        """Approve a held proposal as this principal: its event enters the log."""
        return await self._decide("approve", proposal, reason)

    async def deny(self, proposal: str, *, reason: str | None = None) -> dict[str, Any]:
        """Deny a held proposal: its event never enters the log."""
        return await self._decide("deny", proposal, reason)

    async def _decide(self, op: str, proposal: str, reason: str | None) -> dict[str, Any]:
        # A rollback's approval appends one change per memory it restores: allow time.
        body = {"proposal": proposal, "reason": reason, "requester": self.agent, "timeout": 300}
        result: dict[str, Any] = await self._request(op, body)
        return result

    async def rollback(
        self,
        to: int | str,
        *,
        reason: str,
        memory_id: str | None = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        """Ask to restore the memories as of log sequence (or ISO time) ``to``: all of them,
        one (``memory_id``), or undo one agent's writes (``agent``). A rollback is
        destructive: this opens a proposal a principal approves (``approve``), and
        only then does the gate append the compensating changes."""
        scope = "memory" if memory_id else "agent" if agent else "swarm"
        body = {
            "to": str(to),
            "scope": scope,
            "memory_id": memory_id,
            "agent": agent,
            "reason": reason,
            "requester": self.agent,
        }
        result: dict[str, Any] = await self._request("rollback", body)
        return result

    async def erase(
        self,
        memory_ids: Sequence[str] = (),
        *,
        reason: str,
        about: str | None = None,
        mentions: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Erase memories for good (crypto-shredding; the admin's, or anyone's in an open
        swarm): those named, and with ``about`` every memory filed under that data subject
        and (``mentions``) every memory whose text, in any version, names it.

        Returns ``{"plan": {...}, "erased": [ids], "already": [ids], "seq": S}`` once the
        projections have applied the tombstone at ``seq`` (``dry_run``: the plan only).
        """
        plan: dict[str, Any] = await self._request(
            "erase_plan", {"memories": list(memory_ids), "about": about, "mentions": mentions}
        )
        todo = [m["id"] for m in plan["memories"] if not m["erased"]]
        already = [m["id"] for m in plan["memories"] if m["erased"]]
        if dry_run or not todo:
            return {"plan": plan, "erased": [], "already": already, "seq": None}
        result: dict[str, Any] = await self._request(
            "erase", {"memories": todo, "about": about, "reason": reason}
        )
        if result.get("seq"):  # done when the projections have scrubbed what they derived
            await self._request("status", {"after": result["seq"], "timeout": self.timeout})
        return {**result, "plan": plan, "already": sorted({*already, *result["already"]})}

    async def laws(self) -> dict[str, Any]:
        """The laws in force and the law-set version."""
        result: dict[str, Any] = await self._request("laws", {"requester": self.agent})
        return result

    async def law_history(self) -> list[dict[str, Any]]:
        """Every law enacted, changed or repealed, oldest first."""
        result = await self._request("law_history", {"requester": self.agent})
        rows: list[dict[str, Any]] = result["history"]
        return rows

    async def tail(self, *, since: int = 1, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Accepted events in log order from seq ``since``: who did what to which memory
        (no content; events on another agent's private memories left out). Pages
        through the service's ``tail`` endpoint; ``follow`` keeps polling it."""
        after = max(0, since - 1)
        while True:
            result = await self._request("tail", {"since": after, "limit": TAIL_PAGE})
            rows: list[dict[str, Any]] = result["events"]
            for row in rows:
                yield row
            if rows:
                after = int(rows[-1]["seq"])
            if len(rows) < TAIL_PAGE:
                if not follow:
                    return
                await asyncio.sleep(TAIL_POLL)

    async def memories(
        self, *, agent: str | None = None, forgotten: bool = False, after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The current state of every memory of ``agent`` (None: of every agent) this
        client may see, in the order of their last change: private ones only to their
        agent and the admin, forgotten ones only with ``forgotten``. Pages through the
        service's ``memories`` endpoint; a memory changed meanwhile may come again later,
        in its newer state."""
        after_seq = 0
        while True:
            body = {
                "agent": agent,
                "after_seq": after_seq,
                "limit": MEMORIES_PAGE,
                "forgotten": forgotten,
            }
            result = await self._request("memories", self._read(body, after))
            rows: list[dict[str, Any]] = result["memories"]
            for row in rows:
                yield row
            if len(rows) < MEMORIES_PAGE:
                return
            after_seq = int(rows[-1]["seq"])


def _credentials(given: Credentials | str | Path | None) -> Credentials | None:
    if isinstance(given, Credentials):
        return given
    path = given if given is not None else os.environ.get("SWARM_CREDS")
    return Credentials.load(path) if path else None


class SyncSwarmClient:
    """A blocking facade over :class:`SwarmClient` (its event loop runs in a thread)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        swarm: str = "default",
        agent: str,
        instance: str,
        timeout: float = 10.0,
        credentials: Credentials | str | Path | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="swarm-client"
        )
        self._thread.start()
        self._client = self._call(
            SwarmClient.connect(
                url,
                swarm=swarm,
                agent=agent,
                instance=instance,
                timeout=timeout,
                credentials=credentials,
            )
        )

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def remember(self, content: str, **options: Any) -> Receipt:
        return self._call(self._client.remember(content, **options))

    def update(self, memory_id: str, **options: Any) -> Receipt:
        return self._call(self._client.update(memory_id, **options))

    def reinforce(self, memory_id: str) -> Receipt:
        return self._call(self._client.reinforce(memory_id))

    def forget(self, memory_id: str, *, reason: str | None = None) -> Receipt:
        return self._call(self._client.forget(memory_id, reason=reason))

    def erase(self, memory_ids: Sequence[str] = (), **options: Any) -> dict[str, Any]:
        """See :meth:`SwarmClient.erase`."""
        return self._call(self._client.erase(memory_ids, **options))

    def get(
        self, memory_id: str, *, after: int | None = None, as_of: AsOf | str | None = None
    ) -> dict[str, Any]:
        return self._call(self._client.get(memory_id, after=after, as_of=as_of))

    def history(self, memory_id: str, *, after: int | None = None) -> dict[str, Any]:
        return self._call(self._client.history(memory_id, after=after))

    def recall(self, query: str, **options: Any) -> list[dict[str, Any]]:
        return self._call(self._client.recall(query, **options))

    def status(self) -> dict[str, Any]:
        return self._call(self._client.status())

    def memories(self, **options: Any) -> list[dict[str, Any]]:
        """Every memory :meth:`SwarmClient.memories` yields, as one list."""

        async def collect() -> list[dict[str, Any]]:
            return [row async for row in self._client.memories(**options)]

        return self._call(collect())

    def close(self) -> None:
        try:
            self._call(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> SyncSwarmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
