"""The only module that talks to NATS JetStream.

Streams (per swarm, see :mod:`swarm.subjects`):

* INBOX    proposals; work-queue retention, file storage, 2 min dedup window.
* LOG      accepted events; limits retention, file storage, never expires,
           deletes and purges denied, a dedup window keyed by event id.
* REJECTED rejection records (no content); bounded by age and count.

Every publish is acknowledged and every acknowledgement is checked: pipelined
appends gather their acks (on the log's own reply subscription) with a deadline
and report each failure, refusals included, never swallow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KeyValue

from swarm.auth import user_seed
from swarm.errors import ConnectionFailed, SwarmError, Timeout
from swarm.identity import AgentEntry, Credentials
from swarm.subjects import Subjects

__all__ = [
    "Appended",
    "Closed",
    "JetStreamLog",
    "LogSettings",
    "StoredMessage",
    "StreamState",
    "auth_refused",
    "connect",
]

DAY = 86_400.0
T = TypeVar("T")
#: Stream info is asked this many times, INFO_TIMEOUT seconds each (see _stream_info):
#: long enough to outlast a stream leader's election on a cluster (up to ~10 s).
INFO_ATTEMPTS, INFO_TIMEOUT = 8, 2.5
#: How long a proposal is sent again while no stream takes it (see propose).
NO_STREAM_WAIT = 15.0
#: The registry key where `swarm up` records the revision its server's NATS users
#: reflect. Not an agent: keys starting with '_' are never agent names.
AUTH_APPLIED_KEY = "_nats_auth"


def _is_agent_key(key: str) -> bool:
    return not key.startswith("_")


@dataclass(frozen=True)
class LogSettings:
    """Stream settings. ``replicas`` is 1 on one server, 3 on a cluster."""

    replicas: int = 1
    dedup_window: float = 3_600.0
    inbox_max_age: float = 7 * DAY
    rejected_max_age: float = 90 * DAY
    rejected_max_msgs: int = 1_000_000
    ack_timeout: float = 10.0


class Closed(Exception):
    """The connection is closing: consumer loops end quietly."""


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class StreamState:
    messages: int
    bytes: int
    last_seq: int


@dataclass(frozen=True)
class Appended:
    """The outcome of one pipelined append: a sequence, or the error."""

    seq: int | None
    duplicate: bool = False
    error: Exception | None = None


def auth_refused(err: BaseException | None) -> bool:
    """True if ``err`` is the server refusing a login ("Authorization Violation")."""
    return isinstance(err, nats.errors.AuthorizationError) or (
        err is not None and "authorization violation" in str(err).lower()
    )


async def connect(
    url: str,
    *,
    name: str = "swarm",
    timeout: float = 5.0,
    credentials: Credentials | None = None,
    inbox_prefix: str | None = None,
) -> NATS:
    """Connect with unlimited reconnects (nats.py's default gives up after ~2 min).

    ``url`` may list several servers of a cluster, comma-separated
    (``nats://a:4222,nats://b:4222``): the client connects to any that answers and
    moves to another when its server goes. ``credentials`` log in as that key's
    nkey user (see :mod:`swarm.auth`); ``inbox_prefix`` is where this connection's
    replies arrive (an agent may only subscribe to its own). A refused login is a
    ConnectionFailed at once; a connection the server stops admitting later (its key
    revoked) is closed.
    """
    nc = NATS()
    refused, admitted = asyncio.Event(), asyncio.Event()
    closing: set[asyncio.Task[None]] = set()

    async def _on_error(err: Exception) -> None:
        if not auth_refused(err):
            return
        refused.set()
        if admitted.is_set():  # admitted before, refused now (revoked): do not retry forever
            task = asyncio.create_task(_close_quietly(nc))
            closing.add(task)
            task.add_done_callback(closing.discard)

    # (nats.py annotates these as int; they are seconds and may be fractions)
    options: dict[str, Any] = {"connect_timeout": min(timeout, 2.0), "reconnect_time_wait": 0.5}
    if credentials is not None:
        options["nkeys_seed_str"] = user_seed(credentials)
    if inbox_prefix is not None:
        options["inbox_prefix"] = inbox_prefix
    # Unlimited reconnects also make the *first* connect retry forever, so it
    # gets its own deadline: an unreachable server is an error, not a hang.
    servers = [part.strip() for part in url.split(",") if part.strip()]
    attempt = asyncio.ensure_future(
        nc.connect(
            servers,
            name=name,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=_on_error,
            **options,
        )
    )
    refusal = asyncio.ensure_future(refused.wait())
    try:
        await asyncio.wait({attempt, refusal}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refusal.cancel()
    if attempt.done() and not refused.is_set():
        try:
            attempt.result()
        except (OSError, nats.errors.Error) as err:
            raise ConnectionFailed(f"cannot reach NATS at {url}: {err}") from None
        admitted.set()
        return nc
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await attempt
    with contextlib.suppress(Exception):
        await nc.close()
    if refused.is_set():
        raise ConnectionFailed(_refusal(url, credentials))
    raise ConnectionFailed(f"cannot reach NATS at {url}: is `swarm up` running? (TimeoutError)")


async def _close_quietly(nc: NATS) -> None:
    with contextlib.suppress(Exception):  # the server may already have dropped the socket
        await nc.close()


def closed_reason(nc: NATS, what: str) -> str:
    """Why ``what`` failed on a closed connection, in words."""
    if auth_refused(nc.last_error):
        return f"cannot {what}: the NATS server no longer admits these credentials"
    return f"cannot {what}: the NATS connection is closed"


def _refusal(url: str, credentials: Credentials | None) -> str:
    if credentials is None:
        return (
            f"NATS at {url} requires credentials: pass --creds FILE (or set SWARM_CREDS); "
            "the operator's admin credentials are at <data dir>/admin.creds.json "
            "(`swarm up` prints the path)"
        )
    return (
        f"NATS at {url} refused the credentials of {credentials.principal!r}: not "
        "registered in this swarm, revoked, or not yet in force on this server"
    )


def _appended(fut: asyncio.Future[Msg]) -> Appended:
    """What one pipelined publish's ack says: its sequence, or why it failed."""
    if not fut.done():
        fut.cancel()
        return Appended(seq=None, error=Timeout("no ack from JetStream"))
    if fut.exception() is not None:
        err = fut.exception()
        return Appended(seq=None, error=err if isinstance(err, Exception) else None)
    msg = fut.result()
    status = (msg.headers or {}).get("Status")
    if status == "503":
        return Appended(seq=None, error=ConnectionFailed("no stream takes this subject"))
    try:
        ack = json.loads(msg.data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Appended(seq=None, error=SwarmError(f"unreadable ack: {msg.data[:80]!r}"))
    if "error" in ack:
        error = ack["error"]
        return Appended(
            seq=None,
            error=SwarmError(
                f"JetStream refused the append: {error.get('description')} "
                f"(err_code {error.get('err_code')})"
            ),
        )
    return Appended(seq=int(ack["seq"]), duplicate=bool(ack.get("duplicate")))


class JetStreamLog:
    """Streams, appends and reads for one swarm."""

    def __init__(self, nc: NATS, subjects: Subjects, settings: LogSettings | None = None) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)
        self._js_info: JetStreamContext = nc.jetstream(timeout=INFO_TIMEOUT)
        self.subjects = subjects
        self.settings = settings or LogSettings()
        self._agents_kv: KeyValue | None = None
        self._ack_sub: Any = None
        self._ack_prefix = ""
        self._ack_counter = itertools.count()
        self._acks: dict[str, asyncio.Future[Msg]] = {}

    # -- setup ----------------------------------------------------------------------------

    def _configs(self) -> list[StreamConfig]:
        s, cfg = self.subjects, self.settings
        return [
            StreamConfig(
                name=s.inbox_stream,
                subjects=[s.inbox_all],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                max_age=cfg.inbox_max_age,
                duplicate_window=120.0,
                num_replicas=cfg.replicas,
                description="swarm proposals awaiting the gate",
            ),
            StreamConfig(
                name=s.log_stream,
                subjects=[s.log_all, s.sys_all],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=cfg.dedup_window,
                num_replicas=cfg.replicas,
                deny_delete=True,
                deny_purge=True,
                allow_direct=True,
                description="swarm accepted events: the source of truth",
            ),
            StreamConfig(
                name=s.rejected_stream,
                subjects=[s.rejected_all],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=cfg.rejected_max_age,
                max_msgs=cfg.rejected_max_msgs,
                discard=DiscardPolicy.OLD,
                num_replicas=cfg.replicas,
                description="swarm rejected proposals (content withheld)",
            ),
        ]

    async def ensure_streams(self) -> None:
        """Create the streams, or update them to these settings: safe to repeat."""
        for config in self._configs():
            assert config.name is not None
            try:
                info = await self._stream_info(config.name)
            except nats.js.errors.NotFoundError:
                await self._call(self.js.add_stream(config), f"create stream {config.name}")
                continue
            # Never lower a replication factor an operator raised with other tools.
            current = info.config.num_replicas or 1
            wanted = config.evolve(num_replicas=max(current, config.num_replicas or 1))
            await self._call(self.js.update_stream(wanted), f"update stream {config.name}")

    async def _stream_info(self, name: str, subjects_filter: str | None = None) -> StreamInfo:
        """A stream's info, asked again when unanswered (raw nats errors: wrap in _call).

        On a cluster, a stream that lost its leader (a node gone, or the cluster just
        restarted) answers nobody until it has elected another, a few seconds, and a
        request sent meanwhile is dropped: a short wait, then ask again.
        """
        for _ in range(INFO_ATTEMPTS - 1):
            with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
                return await self._js_info.stream_info(name, subjects_filter=subjects_filter)
        return await self._js_info.stream_info(name, subjects_filter=subjects_filter)

    async def _call(self, aw: Awaitable[T], what: str) -> T:
        try:
            return await aw
        except nats.js.errors.APIError as err:
            raise SwarmError(f"JetStream refused to {what}: {err.description}") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise Timeout(f"JetStream did not answer in time to {what}") from None
        except nats.errors.NoRespondersError:
            raise ConnectionFailed(f"JetStream is not enabled on this server ({what})") from None
        except nats.errors.ConnectionClosedError:
            raise ConnectionFailed(closed_reason(self.nc, what)) from None

    # -- the agent registry (a KV bucket) ----------------------------------------------

    async def _agents(self) -> KeyValue:
        if self._agents_kv is None:
            bucket = self.subjects.agents_bucket
            try:
                self._agents_kv = await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                self._agents_kv = await self._call(
                    self.js.create_key_value(
                        KeyValueConfig(
                            bucket=bucket,
                            history=16,
                            storage=StorageType.FILE,
                            replicas=self.settings.replicas,
                            description="swarm agent registry: public keys and revocations",
                        )
                    ),
                    f"create the agent registry {bucket}",
                )
        return self._agents_kv

    async def put_agent(self, entry: AgentEntry) -> int:
        """Write an agent's entry; returns the registry revision of the write."""
        kv = await self._agents()
        revision: int = await self._call(
            kv.put(entry.agent, entry.model_dump_json().encode()), "write the registry"
        )
        return revision

    async def get_agent(self, agent: str) -> AgentEntry | None:
        kv = await self._agents()
        try:
            found = await kv.get(agent)
        except nats.js.errors.NotFoundError:  # never written, or deleted
            return None
        return AgentEntry.model_validate_json(found.value or b"{}")

    async def _registry_keys(self) -> tuple[list[str], int]:
        """The registry's agent keys and its last revision.

        Read from the bucket stream's subjects, not nats.py's ``kv.keys()``: its
        "no more keys" marker can arrive before the keys do, and it then reports
        fewer (or none) — the wrong answer for "does this swarm have agents?".
        """
        await self._agents()
        bucket = self.subjects.agents_bucket
        info = await self._call(
            self._stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>"),
            "read the registry",
        )
        prefix = f"$KV.{bucket}."
        keys = [subject[len(prefix) :] for subject in (info.state.subjects or {})]
        return sorted(k for k in keys if _is_agent_key(k)), int(info.state.last_seq)

    async def list_agents(self) -> list[AgentEntry]:
        keys, _ = await self._registry_keys()
        found = [await self.get_agent(key) for key in keys]
        return [entry for entry in found if entry is not None]

    async def agent_keys(self) -> dict[str, list[str]]:
        """Every public key each registered agent has had (the registry's kept history)."""
        kv = await self._agents()
        out: dict[str, list[str]] = {}
        for entry in await self.list_agents():
            try:
                history = await kv.history(entry.agent)
            except nats.js.errors.NoKeysError:
                history = []
            keys = [AgentEntry.model_validate_json(h.value).public_key for h in history if h.value]
            out[entry.agent] = list(dict.fromkeys([*keys, entry.public_key]))
        return out

    async def has_agents(self) -> bool:
        keys, _ = await self._registry_keys()
        for key in keys:
            if await self.get_agent(key) is not None:
                return True
        return False

    async def watch_agents(self) -> AsyncIterator[tuple[int, list[AgentEntry]]]:
        """The registry now, then again after each change: (revision, every entry).

        ``revision`` is the highest registry revision seen so far; `swarm up`
        records it with :meth:`set_auth_applied` once its server enforces that state.
        """
        kv = await self._agents()
        _, start = await self._registry_keys()
        watcher = await kv.watchall()
        entries: dict[str, AgentEntry] = {}
        revision, changed = 0, True
        try:
            if start == 0:
                changed = False
                yield 0, []
            async for update in watcher:
                if update is None:  # nats.py's "initial values done" marker may come early
                    continue
                revision = max(revision, update.revision or 0)
                if _is_agent_key(update.key):
                    changed = True
                    entries.pop(update.key, None)
                    if update.operation not in ("DEL", "PURGE") and update.value:
                        with contextlib.suppress(ValueError):
                            entries[update.key] = AgentEntry.model_validate_json(update.value)
                # Yield once the state at the start is all in (the last message of the
                # stream is the last of its key, so it is delivered), then per burst.
                if changed and revision >= start and not update.delta:
                    changed = False
                    yield revision, list(entries.values())
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def auth_applied(self) -> int | None:
        """The registry revision the server's users reflect, as `swarm up` last
        recorded it; None if no `swarm up` manages this server's users."""
        kv = await self._agents()
        try:
            found = await kv.get(AUTH_APPLIED_KEY)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as err:
            raise ConnectionFailed(f"cannot read the registry: {err}") from None
        return int(json.loads(found.value or b"{}").get("revision", 0))

    async def set_auth_applied(self, revision: int | None) -> None:
        """Record that the server enforces the registry as of ``revision`` (None: this
        server's users are managed elsewhere, nothing to wait for)."""
        kv = await self._agents()
        if revision is None:
            if await self.auth_applied() is not None:
                await self._call(kv.delete(AUTH_APPLIED_KEY), "write the registry")
            return
        body = json.dumps({"revision": revision}).encode()
        await self._call(kv.put(AUTH_APPLIED_KEY, body), "write the registry")

    # -- writes ---------------------------------------------------------------------------

    async def propose(
        self, agent: str, instance: str, data: bytes, *, event_id: str, headers: Mapping[str, str]
    ) -> int:
        """Publish a proposal to the instance's inbox; returns its INBOX sequence.

        No inbox dedup id: a retried proposal must reach the gate again, which
        recognises the event id and answers with the original receipt.

        While no stream takes it (a cluster electing the INBOX's leader after losing
        a node, for a few seconds) it is sent again for up to ``NO_STREAM_WAIT``
        seconds: nothing was stored, so nothing is doubled.
        """
        hdrs = {"Swarm-Event-Id": event_id, **headers}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NO_STREAM_WAIT
        while True:
            try:
                ack = await self._call(
                    self.js.publish(
                        self.subjects.inbox(agent, instance),
                        data,
                        headers=hdrs,
                        timeout=self.settings.ack_timeout,
                    ),
                    "accept the proposal into the inbox",
                )
                return int(ack.seq)
            except nats.js.errors.NoStreamResponseError:
                if loop.time() >= deadline or not await self._may_exist(self.subjects.inbox_stream):
                    raise ConnectionFailed(
                        f"no stream takes proposals for swarm {self.subjects.swarm!r}: is "
                        "`swarm up` running for it?"
                    ) from None
                await asyncio.sleep(0.2)

    async def _may_exist(self, stream: str) -> bool:
        """False only if JetStream says there is no such stream (no service has made it:
        no point waiting); True if it exists or cannot tell (a leader being elected, or
        a login without access to the JetStream API)."""
        try:
            await self._js_info.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return False
        except (nats.errors.Error, TimeoutError):
            pass
        return True

    async def append_many(
        self, items: Sequence[tuple[str, bytes, Mapping[str, str]]]
    ) -> list[Appended]:
        """Pipelined publishes, in order, each ack checked: (subject, data, headers).

        Not nats.py's ``publish_async``: its futures never resolve when JetStream
        answers with an error (nats.py #985; the error is raised inside a callback),
        so a refused append would look like a lost ack. Here every ack, error or
        not, arrives on this log's own reply subscription and is parsed.
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        await self._ack_subscription()
        tokens: list[str] = []
        futures: list[asyncio.Future[Msg]] = []
        for subject, data, headers in items:
            token = f"{self._ack_prefix}.{next(self._ack_counter)}"
            fut: asyncio.Future[Msg] = loop.create_future()
            self._acks[token] = fut
            tokens.append(token)
            futures.append(fut)
            try:
                await self.nc.publish(subject, data, reply=token, headers=dict(headers))
            except Exception as err:
                fut.set_exception(err)
        try:
            await asyncio.wait(futures, timeout=self.settings.ack_timeout)
        finally:
            for token in tokens:
                self._acks.pop(token, None)
        return [_appended(fut) for fut in futures]

    async def _ack_subscription(self) -> None:
        if self._ack_sub is None:
            self._ack_prefix = self.nc.new_inbox()
            self._ack_sub = await self.nc.subscribe(f"{self._ack_prefix}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        fut = self._acks.get(msg.subject)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    # -- reads ----------------------------------------------------------------------------

    async def seq_at(self, when: datetime) -> int:
        """The last LOG sequence stored at or before ``when`` (0: none yet): a binary
        search over the messages' stored times, one direct get per step."""
        low, high = 0, await self.last_seq()
        while low < high:
            middle = (low + high + 1) // 2
            raw = await self._call(
                self.js.get_msg(self.subjects.log_stream, middle, direct=True), "read the log"
            )
            stored_at = raw.time
            if stored_at is not None and stored_at <= when:
                low = middle
            else:
                high = middle - 1
        return low

    async def last_entry(self) -> StoredMessage | None:
        """The LOG's last message, or None while it is empty."""
        last = await self.last_seq()
        if last == 0:
            return None
        raw = await self._call(
            self.js.get_msg(self.subjects.log_stream, last, direct=True), "read the log's end"
        )
        return StoredMessage(
            seq=int(raw.seq or last),
            subject=raw.subject or "",
            data=raw.data or b"",
            headers=dict(raw.headers or {}),
        )

    async def last_seq(self, stream: str | None = None) -> int:
        name = stream or self.subjects.log_stream
        info = await self._call(self._stream_info(name), "read the stream state")
        return int(info.state.last_seq)

    async def message_count(self, stream: str) -> int:
        info = await self._call(self._stream_info(stream), "read the stream state")
        return int(info.state.messages)

    async def stream_state(self, stream: str) -> StreamState:
        """Messages, bytes and last sequence of one stream (one request)."""
        info = await self._call(self._stream_info(stream), "read the stream state")
        state = info.state
        return StreamState(int(state.messages), int(state.bytes), int(state.last_seq))

    async def stored_at(self, seq: int) -> datetime | None:
        """When the LOG stored the entry at ``seq`` (None: no such entry)."""
        try:
            raw = await self.js.get_msg(self.subjects.log_stream, seq, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return raw.time

    async def event_id_at(self, seq: int) -> str | None:
        """The event id (Nats-Msg-Id) of the LOG message at ``seq``, if there is one."""
        try:
            raw = await self.js.get_msg(self.subjects.log_stream, seq, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return (raw.headers or {}).get("Nats-Msg-Id")

    async def memory_exists(self, memory_id: str) -> bool:
        try:
            await self.js.get_last_msg(
                self.subjects.log_stream, self.subjects.log_of_memory(memory_id)
            )
        except nats.js.errors.NotFoundError:
            return False
        return True

    async def memory_ids(self) -> set[str]:
        """Every memory id in the log: a paged listing of the LOG's subjects.

        One request per page of subjects (not per message), so the gate can tell
        a new memory from an existing one without a lookup per proposal.
        """
        ids: set[str] = set()
        offset = 0
        subject = f"$JS.API.STREAM.INFO.{self.subjects.log_stream}"
        while True:
            body = json.dumps({"subjects_filter": self.subjects.log_all, "offset": offset})
            reply = await self._call(
                self.nc.request(subject, body.encode(), timeout=30), "list the log's subjects"
            )
            data = json.loads(reply.data)
            if "error" in data:
                raise SwarmError(f"JetStream refused to list subjects: {data['error']}")
            subjects = (data.get("state") or {}).get("subjects") or {}
            ids.update(name.rsplit(".", 1)[-1] for name in subjects)
            offset += len(subjects)
            if not subjects or offset >= int(data.get("total", 0)):
                return ids

    async def read_memory(self, memory_id: str) -> list[StoredMessage]:
        """Every log message of one memory, in order (direct gets by subject)."""
        out: list[StoredMessage] = []
        subject = self.subjects.log_of_memory(memory_id)
        seq = 1
        while True:
            try:
                raw = await self.js.get_msg(
                    self.subjects.log_stream, seq, subject=subject, next=True, direct=True
                )
            except nats.js.errors.NotFoundError:
                return out
            out.append(
                StoredMessage(
                    seq=int(raw.seq or 0),
                    subject=raw.subject or "",
                    data=raw.data or b"",
                    headers=dict(raw.headers or {}),
                )
            )
            seq = int(raw.seq or 0) + 1

    async def read(
        self,
        *,
        stream: str | None = None,
        start_seq: int = 1,
        until_seq: int | None = None,
        follow: bool = False,
        batch: int = 500,
        filter_subject: str | None = None,
    ) -> AsyncIterator[list[StoredMessage]]:
        """Ordered batches from ``start_seq`` (an ephemeral, unacknowledged consumer).

        Stops at the end of the stream (or ``until_seq``) unless ``follow``; with a
        ``filter_subject``, only its messages (the end is then the stream's end).
        """
        stream = stream or self.subjects.log_stream
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_seq),
            inactive_threshold=30.0,
            filter_subject=filter_subject,
        )
        end = (
            until_seq
            if until_seq is not None
            else (None if follow else await self.last_seq(stream))
        )
        if end is not None and end < start_seq:
            return
        sub = await self.js.pull_subscribe(filter_subject or "", stream=stream, config=config)
        try:
            if filter_subject and not follow and not (await sub.consumer_info()).num_pending:
                return
            while True:
                msgs = await self.fetch(sub, batch, 1.0)
                if not msgs:
                    if follow:
                        continue
                    return
                out = []
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if end is not None and seq > end:
                        break
                    out.append(
                        StoredMessage(
                            seq=seq,
                            subject=msg.subject,
                            data=msg.data,
                            headers=dict(msg.headers or {}),
                        )
                    )
                if out:
                    yield out
                if end is not None and (not out or out[-1].seq >= end):
                    return
                if filter_subject and not follow and not msgs[-1].metadata.num_pending:
                    return
        finally:
            await sub.unsubscribe()

    @staticmethod
    async def fetch(
        sub: JetStreamContext.PullSubscription, batch: int, timeout: float
    ) -> list[Msg]:
        """Up to ``batch`` messages; [] when none arrive in ``timeout``.

        Also [] (after ``timeout``) while the consumer has no leader to answer: a
        cluster electing one after losing a node; the durable consumer carries on
        once it has. Raises :class:`Closed` once the connection is closing.
        """
        try:
            return await sub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except nats.js.errors.ServiceUnavailableError:
            await asyncio.sleep(timeout)
            return []
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
            raise Closed from None

    async def durable_pull(
        self,
        *,
        stream: str,
        durable: str,
        filter_subject: str | None,
        start_seq: int,
        ack_all: bool,
        max_ack_pending: int = 20_000,
        fresh: bool = False,
    ) -> JetStreamContext.PullSubscription:
        """A durable pull consumer.

        ``fresh`` (the projectors): delete any existing consumer of that name and
        start a new one at ``start_seq`` — the caller's checkpoint is the truth,
        and messages a killed predecessor left unacknowledged must not arrive
        late, after newer ones. Otherwise (the gate's work queue) an existing
        consumer is reused so unacknowledged proposals are redelivered.
        """
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.ALL if ack_all else AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq > 1 else DeliverPolicy.ALL,
            opt_start_seq=start_seq if start_seq > 1 else None,
            filter_subject=filter_subject,
            ack_wait=300.0,
            max_ack_pending=max_ack_pending,
            max_deliver=-1,
        )
        if fresh:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_consumer(stream, durable)
        return await self._call(
            self.js.pull_subscribe(
                filter_subject or "", durable=durable, stream=stream, config=config
            ),
            f"create consumer {durable}",
        )
