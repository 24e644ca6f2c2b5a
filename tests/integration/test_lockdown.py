"""The transport locked down: with agents registered, nats-server itself refuses
everything an agent must not do. Runs `swarm up` as a user would (embedded
server, users reloaded from the registry) and probes it with plain nats-py
connections, checking each refusal came from the server (a permissions or
authorization error) and that the streams did not change."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import pytest
from click.testing import CliRunner, Result
from nats.aio.client import Client as NATS

from cli.main import main
from swarm.auth import inbox_prefix, user_seed
from swarm.client import SwarmClient
from swarm.errors import (
    ConnectionFailed,
    Forbidden,
    LawViolation,
    NotFound,
    ServerError,
    Timeout,
)
from swarm.identity import Credentials
from swarm.jetstream import JetStreamLog, auth_refused, connect
from swarm.server import NatsServer, free_port
from swarm.subjects import Subjects
from tests.integration.stack import UpProcess

pytestmark = pytest.mark.integration

SWARM = "lock"
S = Subjects(SWARM)
FORGED_ID = "01FORGED00000000000000000X"
MISDIRECTED = "01MISDIRECTED0000000000000"


@dataclass
class Stack:
    url: str
    data: Path
    admin: Path  # the admin credentials `swarm up` wrote

    def cli(self, *args: str, creds: Path | None = None) -> Result:
        common = ["--url", self.url, "--name", SWARM]
        if creds is not None:
            common += ["--creds", str(creds)]
        return CliRunner().invoke(main, [*args, *common])

    def add(self, agent: str) -> Path:
        out = self.data / f"{agent}.creds.json"
        result = self.cli("agents", "add", agent, "--out", str(out), "--json", creds=self.admin)
        assert result.exit_code == 0, result.output + result.stderr
        return out

    def creds(self, agent: str) -> Path:
        return self.data / f"{agent}.creds.json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("lockdown")
    laws = data / "laws.yaml"
    laws.write_text(
        "laws:\n"
        "  - id: ask-before-forgetting\n"
        "    kind: destructive\n"
        "    action: require_approval\n"
    )
    up = UpProcess(
        "--port", str(free_port()), "--name", SWARM, "--laws", str(laws), data=data
    ).start()
    try:
        locked = Stack(up.info["nats"], data, Path(up.info["admin_creds"]))
        locked.add("brad")
        locked.add("ann")
        yield locked
    finally:
        assert up.terminate() == 0


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[JetStreamLog]:
    nc = await connect(stack.url, credentials=Credentials.load(stack.admin))
    yield JetStreamLog(nc, S)
    await nc.close()


async def eventually(check: Callable[[], bool], *, what: str, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for: {what}")


class Probe:
    """A plain nats-py connection as one principal, keeping every error the server sends."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = NATS()

    async def refused(self, what: str) -> None:
        """Wait until the server has refused ``what`` (a permissions violation)."""
        wanted = f'permissions violation for {what}"'.lower()
        await eventually(lambda: any(wanted in e for e in self.errors), what=f"refused {what}")


@contextlib.asynccontextmanager
async def probe(stack: Stack, agent: str) -> AsyncIterator[Probe]:
    creds = Credentials.load(stack.creds(agent))
    p = Probe()

    async def on_error(err: Exception) -> None:
        p.errors.append(str(err).lower())

    await p.nc.connect(
        stack.url,
        nkeys_seed_str=user_seed(creds),
        inbox_prefix=inbox_prefix(SWARM, creds.principal),
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        yield p
    finally:
        await p.nc.close()


async def client(stack: Stack, agent: str, instance: str = "test") -> SwarmClient:
    return await SwarmClient.connect(
        stack.url, swarm=SWARM, agent=agent, instance=instance, credentials=stack.creds(agent)
    )


async def stream_state(admin: JetStreamLog, stream: str) -> tuple[int, int]:
    info = await admin.js.stream_info(stream)
    return int(info.state.messages), int(info.state.last_seq)


# -- what an agent's credentials cannot do ---------------------------------------------


async def test_an_agent_cannot_append_to_the_log(stack, admin):
    before = await stream_state(admin, S.log_stream)
    async with probe(stack, "brad") as brad:
        await brad.nc.publish(S.log("brad", FORGED_ID), b"a forged accepted event")
        await brad.refused(f'publish to "{S.log("brad", FORGED_ID)}')
        assert brad.nc.is_connected  # refused, not disconnected
    assert await stream_state(admin, S.log_stream) == before


async def test_an_agent_cannot_publish_to_another_agents_inbox(stack, admin):
    before = await stream_state(admin, S.inbox_stream)
    async with probe(stack, "brad") as brad:
        await brad.nc.publish(S.inbox("ann", "desk"), b"a proposal in ann's name")
        await brad.refused(f'publish to "{S.inbox("ann", "desk")}')
    assert await stream_state(admin, S.inbox_stream) == before


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (f"STREAM.PURGE.{S.log_stream}", b"{}"),
        (f"STREAM.DELETE.{S.log_stream}", b""),
        (f"STREAM.INFO.{S.log_stream}", b""),
        (f"DIRECT.GET.{S.log_stream}", b'{"seq": 1}'),
        (f"CONSUMER.CREATE.{S.log_stream}", b'{"config": {"ack_policy": "none"}}'),
    ],
    ids=["purge", "delete", "info", "direct-get", "consumer"],
)
async def test_an_agent_cannot_call_the_jetstream_api(stack, admin, call, body):
    before = await stream_state(admin, S.log_stream)
    async with probe(stack, "brad") as brad:
        with pytest.raises(nats.errors.TimeoutError):  # dropped by the server: no answer
            await brad.nc.request(f"$JS.API.{call}", body, timeout=0.5)
        await brad.refused(f'publish to "$JS.API.{call}')
    assert await stream_state(admin, S.log_stream) == before


async def test_an_agent_cannot_subscribe_to_the_log_or_to_anothers_replies(stack):
    async with probe(stack, "ann") as ann:
        seen: list[str] = []

        async def record(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.subject)

        for subject in (S.log_all, S.rejected_all, f"{inbox_prefix(SWARM, 'brad')}.>"):
            await ann.nc.subscribe(subject, cb=record)
            await ann.refused(f'subscription to "{subject}')
        async with await client(stack, "brad") as brad:
            receipt = await brad.remember("brad's receipt goes to brad alone")
            await brad.get(receipt.id, after=receipt.seq)
        await ann.nc.flush()
        assert seen == []


async def test_an_agent_cannot_write_the_registry(stack, admin):
    mallory = Credentials.generate(SWARM, "mallory")
    entry = {"agent": "mallory", "public_key": mallory.public_key}
    async with probe(stack, "brad") as brad:
        subject = f"$KV.{S.agents_bucket}.mallory"
        await brad.nc.publish(subject, json.dumps(entry).encode())
        await brad.refused(f'publish to "{subject}')
    assert await admin.get_agent("mallory") is None
    assert {e.agent for e in await admin.list_agents()} >= {"brad", "ann"}


async def test_an_agent_cannot_read_anothers_private_memory_by_forging_the_requester(stack):
    async with await client(stack, "brad") as brad:
        secret = await brad.remember("brad's private note", private=True)
        assert (await brad.get(secret.id, after=secret.seq))["content"] == "brad's private note"
    async with probe(stack, "ann") as ann:
        forged = S.api("get", "brad")
        with pytest.raises(nats.errors.TimeoutError):
            await ann.nc.request(forged, json.dumps({"id": secret.id}).encode(), timeout=0.5)
        await ann.refused(f'publish to "{forged}')
        # The body's requester field is ignored: the subject names ann.
        body = {"id": secret.id, "requester": "brad"}
        reply = await ann.nc.request(S.api("get", "ann"), json.dumps(body).encode(), timeout=5)
        assert json.loads(reply.data)["error"]["type"] == "NotFound"
    async with await client(stack, "ann") as ann_client:
        with pytest.raises(NotFound):
            await ann_client.get(secret.id)
        assert secret.id not in [e["memory_id"] async for e in ann_client.tail()]
        assert all(r["id"] != secret.id for r in await ann_client.recall("brad's private note"))


async def test_answers_are_never_sent_to_another_agents_reply_prefix(stack):
    async with probe(stack, "brad") as brad, probe(stack, "ann") as ann:
        annoyed = await ann.nc.subscribe(inbox_prefix(SWARM, "ann") + ".>")
        await ann.nc.flush()
        # A read whose reply names ann's prefix: the service does not answer there.
        status = json.dumps({}).encode()
        await brad.nc.publish(
            S.api("status", "brad"), status, reply=inbox_prefix(SWARM, "ann") + ".x"
        )
        # A write whose receipt should go to ann: the gate writes it, sends ann nothing.
        async with await client(stack, "brad") as writer:
            writer._reply = inbox_prefix(SWARM, "ann") + ".receipts"
            writer.timeout = 0.3
            with pytest.raises(Timeout):
                await writer.remember("a receipt for ann", memory_id=MISDIRECTED)
            writer.timeout = 10
            last = (await writer.status())["log_seq"]
            assert (await writer.get(MISDIRECTED, after=last))["content"] == "a receipt for ann"
        # brad's own request still gets its answer, and nothing reached ann.
        answer = await brad.nc.request(S.api("status", "brad"), status, timeout=5)
        assert json.loads(answer.data)["ok"] is True
        with pytest.raises(nats.errors.TimeoutError):
            await annoyed.next_msg(timeout=0.5)


async def test_a_held_write_is_decided_by_the_admin_not_by_an_agent(stack):
    async with await client(stack, "brad") as brad, await client(stack, "ann") as ann:
        made = await brad.remember("brad's runbook lives in the ops wiki")
        held = await ann.forget(made.id, reason="moved")
        assert held.status == "pending"
        for agent in (brad, ann):  # neither has the approver role
            with pytest.raises(Forbidden, match="may not decide"):
                await agent.approve(held.proposal)
        listed = await asyncio.to_thread(stack.cli, "approvals", "--json", creds=stack.admin)
        assert listed.exit_code == 0, listed.output
        assert held.proposal in [p["proposal"] for p in json.loads(listed.output)["proposals"]]
        decided = await asyncio.to_thread(
            stack.cli, "approvals", "approve", held.proposal, "--json", creds=stack.admin
        )
        assert decided.exit_code == 0, decided.output
        row = json.loads(decided.output)
        assert row["status"] == "approved" and row["decided_by"] == "_admin"
        assert (await brad.get(made.id, after=row["event_seq"]))["forgotten"] is True


async def test_only_the_admin_erases_and_agents_cannot_get_others_keys(stack):
    async with await client(stack, "brad") as brad, await client(stack, "ann") as ann:
        made = await brad.remember("brad's locker code is in the drawer", private=True)
        with pytest.raises(Forbidden, match="only the admin may"):
            await ann.erase([made.id], reason="mine now")
        with pytest.raises(Forbidden, match="only the admin may"):
            await brad.erase([made.id], reason="my own")
        with pytest.raises(Forbidden, match="private to agent brad"):
            await ann._issue([made.id], ())  # the key would open brad's private text
        erased = await asyncio.to_thread(
            stack.cli, "forget", made.id, "--erase", "--reason", "asked", "--json",
            creds=stack.admin,
        )  # fmt: skip
        assert erased.exit_code == 0, erased.output
        assert json.loads(erased.output)["erased"] == [made.id]
        assert (await brad.get(made.id))["erased"] is True


async def test_anonymous_connections_are_refused_once_an_agent_is_registered(stack):
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(stack.url, allow_reconnect=False)
    with pytest.raises(ConnectionFailed, match="requires credentials"):
        await SwarmClient.connect(stack.url, swarm=SWARM, agent="brad", instance="anon")


async def test_a_revoked_agent_is_cut_off_and_cannot_reconnect(stack):
    await asyncio.to_thread(stack.add, "carl")
    carl = await client(stack, "carl")
    assert (await carl.remember("carl was here")).seq > 0
    revoked = await asyncio.to_thread(stack.cli, "agents", "revoke", "carl", creds=stack.admin)
    assert revoked.exit_code == 0, revoked.output + revoked.stderr
    # The server cut it when it reloaded its users; the client gives up on its key.
    await eventually(lambda: carl.log.nc.is_closed, what="carl's connection closed")
    assert auth_refused(carl.log.nc.last_error)
    with pytest.raises(ConnectionFailed, match="no longer admits"):
        await carl.remember("after the revocation")
    with pytest.raises(ConnectionFailed, match="refused the credentials of 'carl'"):
        await client(stack, "carl")


# -- what works with auth on -----------------------------------------------------------


async def test_an_agent_remembers_gets_recalls_and_tails_with_auth_on(stack):
    async with await client(stack, "brad", "laptop") as brad:
        receipt = await brad.remember("The deploy key rotates on Mondays", tags=["ops"])
        assert (await brad.get(receipt.id, after=receipt.seq))["tags"] == ["ops"]
        hits = await brad.recall("when does the deploy key rotate", after=receipt.seq)
        assert hits[0]["id"] == receipt.id
        updated = await brad.update(receipt.id, add_tags=["keys"])
        await brad.get(receipt.id, after=updated.seq)  # tail reads the projection
        events = [e async for e in brad.tail(since=receipt.seq)]
        assert [(e["seq"], e["type"]) for e in events][:2] == [
            (receipt.seq, "memory.remembered"),
            (updated.seq, "memory.updated"),
        ]
        assert all("content" not in e for e in events)


async def test_an_agent_added_with_the_cli_can_connect_at_once(stack):
    added = await asyncio.to_thread(stack.add, "dan")
    async with await SwarmClient.connect(
        stack.url, swarm=SWARM, agent="dan", instance="new", credentials=added
    ) as dan:
        assert (await dan.remember("dan's first memory")).seq > 0


async def test_the_admin_cli_lists_agents_and_reads_everything_but_cannot_write(stack):
    listed = await asyncio.to_thread(stack.cli, "agents", "list", "--json", creds=stack.admin)
    assert listed.exit_code == 0, listed.output + listed.stderr
    assert {"brad", "ann"} <= {a["agent"] for a in json.loads(listed.stdout)["agents"]}
    # An agent's credentials name the agent: no --agent needed.
    brad = stack.creds("brad")
    wrote = await asyncio.to_thread(
        stack.cli, "remember", "brad's private plan", "--private", "--json", creds=brad
    )
    assert wrote.exit_code == 0, wrote.output + wrote.stderr
    mid, seq = json.loads(wrote.stdout)["id"], json.loads(wrote.stdout)["seq"]
    seen = await asyncio.to_thread(
        stack.cli, "get", mid, "--after", str(seq), "--json", creds=stack.admin
    )
    assert seen.exit_code == 0, seen.output + seen.stderr
    assert json.loads(seen.stdout)["agent"] == "brad"
    refused = await asyncio.to_thread(stack.cli, "remember", "from the admin", creds=stack.admin)
    assert refused.exit_code == 1
    assert "admin credentials cannot write" in refused.stderr
    agent_creds = await asyncio.to_thread(stack.cli, "agents", "list", creds=brad)
    assert agent_creds.exit_code == 1
    assert "needs the admin credentials" in agent_creds.stderr


async def test_an_agent_sees_only_its_own_rejections_and_the_admin_all(stack):
    async with await client(stack, "brad") as brad:
        with pytest.raises(LawViolation):
            await brad.remember("mail brad at brad@example.org")
    async with await client(stack, "ann") as ann:
        rows = await ann.rejections(limit=1000)
        assert all(r["agent"] == "ann" for r in rows)
    admin_view = await SwarmClient.connect(
        stack.url, swarm=SWARM, agent="admin", instance="ops", credentials=stack.admin
    )
    async with admin_view:
        for _ in range(100):  # the rejection projection trails a moment
            if any(r["agent"] == "brad" for r in await admin_view.rejections(limit=1000)):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the admin never saw brad's rejection")


async def test_nats_config_prints_users_an_external_server_enforces(stack, tmp_path):
    printed = await asyncio.to_thread(
        stack.cli, "agents", "nats-config", "--data", str(tmp_path), creds=stack.admin
    )
    assert printed.exit_code == 0, printed.output + printed.stderr
    external = NatsServer(tmp_path / "nats", port=free_port(), auth=printed.stdout)
    await asyncio.to_thread(external.start)
    try:
        brad = Credentials.load(stack.creds("brad"))
        nc = await connect(external.url, credentials=brad, inbox_prefix=inbox_prefix(SWARM, "brad"))
        await nc.close()
        service = Credentials.load(tmp_path / "service.creds.json")
        await (await connect(external.url, credentials=service)).close()
        with pytest.raises(ConnectionFailed, match="requires credentials"):
            await connect(external.url)
    finally:
        await asyncio.to_thread(external.stop)


# -- from open to locked ---------------------------------------------------------------


async def test_registering_the_first_agent_locks_an_open_swarm(tmp_path):
    up = UpProcess("--port", str(free_port()), "--name", SWARM, data=tmp_path).start()
    try:
        url = up.info["nats"]
        anonymous = await SwarmClient.connect(url, swarm=SWARM, agent="early", instance="x")
        assert (await anonymous.remember("written while the swarm is open")).seq > 0
        out = tmp_path / "first.creds.json"
        # Anonymously too: the CLI's own connection is cut when the change takes hold.
        args = ["agents", "add", "first", "--out", str(out), "--url", url, "--name", SWARM]
        added = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert added.exit_code == 0, added.output + added.stderr
        assert "now requires credentials" in added.stderr
        await eventually(lambda: anonymous.log.nc.is_closed, what="anonymous cut")
        with pytest.raises(ConnectionFailed):
            await anonymous.remember("no longer")
        await anonymous.close()
        async with await SwarmClient.connect(
            url, swarm=SWARM, agent="first", instance="x", credentials=out
        ) as first:
            assert (await first.remember("signed and logged in")).seq > 0
    finally:
        assert up.terminate() == 0

    # A restart never reopens it, even without the record of the users last applied.
    (tmp_path / "nats" / "registry.json").unlink()
    up = UpProcess("--port", url.rsplit(":", 1)[1], "--name", SWARM, data=tmp_path).start()
    try:
        with pytest.raises(ConnectionFailed, match="requires credentials"):
            await connect(url)
        async with await SwarmClient.connect(
            url, swarm=SWARM, agent="first", instance="x", credentials=out
        ) as first:
            assert (await first.remember("still admitted after a restart")).seq > 0
    finally:
        assert up.terminate() == 0


def test_a_config_nats_server_refuses_is_an_error_and_changes_nothing(tmp_path):
    server = NatsServer(tmp_path, port=free_port()).start()
    try:
        with pytest.raises(ServerError, match="refused its new config"):
            server.reload('authorization { users = [ {nkey: "not a key"} ] }\n')
        assert server.running
        assert "not a key" not in server.config_path.read_text()
        assert asyncio.run(_can_connect_anonymously(server.url))
    finally:
        server.stop()


async def _can_connect_anonymously(url: str) -> bool:
    await (await connect(url)).close()
    return True
