"""Signed envelopes and the agent registry, on a real server."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from cli.main import main
from swarm.client import SwarmClient
from swarm.errors import ConfigError, IdentityError
from swarm.identity import AgentEntry, Credentials, sign
from swarm.jetstream import JetStreamLog, connect
from swarm.subjects import Subjects

pytestmark = pytest.mark.integration


@pytest.fixture
async def registry(service, nats_url, swarm_name):
    nc = await connect(nats_url)
    yield JetStreamLog(nc, Subjects(swarm_name))
    await nc.close()


async def register(registry: JetStreamLog, swarm: str, agent: str) -> Credentials:
    creds = Credentials.generate(swarm, agent)
    await registry.put_agent(AgentEntry(agent=agent, public_key=creds.public_key))
    return creds


async def test_open_swarm_accepts_unsigned_writes_until_an_agent_is_registered(
    registry, nats_url, swarm_name
):
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="a"
    ) as c:
        assert (await c.remember("written in open mode")).status == "accepted"
        await register(registry, swarm_name, "ann")
        with pytest.raises(IdentityError, match="not registered"):
            await c.remember("brad is not registered now that the swarm has agents")


async def test_signed_writes_pass_and_unsigned_or_foreign_ones_are_refused(
    registry, nats_url, swarm_name
):
    brad = await register(registry, swarm_name, "brad")
    ann = await register(registry, swarm_name, "ann")
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud", credentials=brad
    ) as signed:
        receipt = await signed.remember("signed by brad")
        assert receipt.seq >= 1
        assert (await signed.update(receipt.id, add_tags=["ok"])).seq > receipt.seq
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud"
    ) as unsigned:
        with pytest.raises(IdentityError, match="unsigned"):
            await unsigned.remember("no signature")
        # Signed, but with ann's key: the gate checks against brad's registered key.
        unsigned.credentials = Credentials(
            swarm=swarm_name, agent="brad", public_key=ann.public_key, secret_key=ann.secret_key
        )
        with pytest.raises(IdentityError, match="bad signature"):
            await unsigned.remember("signed with someone else's key")


async def test_revoked_agent_is_refused_at_once(registry, nats_url, swarm_name):
    brad = await register(registry, swarm_name, "brad")
    async with await SwarmClient.connect(
        nats_url, swarm=swarm_name, agent="brad", instance="cloud", credentials=brad
    ) as c:
        await c.remember("before revocation")
        entry = await registry.get_agent("brad")
        await registry.put_agent(entry.model_copy(update={"revoked_at": entry.created_at}))
        with pytest.raises(IdentityError, match="revoked"):
            await c.remember("after revocation")


async def test_tampered_signed_envelope_fails_verification(registry, swarm_name):
    from swarm.crdt import MemoryDoc, author, new_actor  # noqa: PLC0415
    from swarm.events import MemoryRemembered  # noqa: PLC0415
    from swarm.identity import verify  # noqa: PLC0415

    brad = await register(registry, swarm_name, "brad")
    actor = new_actor(swarm_name, "brad", "cloud")
    with author(MemoryDoc(), actor) as (edit, out):
        edit.create(
            memory_id="01TAMPER000000000000000001",
            content="x",
            kind="fact",
            tags=[],
            importance=0.5,
            agent="brad",
            instance="cloud",
            private=False,
            created_at="t",
        )
    event = sign(
        MemoryRemembered(
            swarm=swarm_name,
            agent="brad",
            instance="cloud",
            actor=actor.hex(),
            memory_id="01TAMPER000000000000000001",
            change=out[0],
        ),
        brad,
    )
    assert verify(event, brad.public_key)
    assert not verify(
        event.model_copy(update={"memory_id": "01TAMPER000000000000000002"}), brad.public_key
    )
    assert not verify(event.model_copy(update={"change": out[0] + b"x"}), brad.public_key)


def test_credentials_must_match_the_identity(swarm_name):
    creds = Credentials.generate(swarm_name, "ann")
    with pytest.raises(ConfigError, match="credentials are for agent 'ann'"):
        SwarmClient.__init__(
            object.__new__(SwarmClient),
            None,
            swarm=swarm_name,
            agent="brad",  # type: ignore[arg-type]
            instance="x",
            credentials=creds,
        )


async def test_agents_cli_registers_lists_and_revokes(service, nats_url, swarm_name, tmp_path):
    runner = CliRunner()

    async def invoke(*args: str):  # in a thread: the service runs on this event loop
        return await asyncio.to_thread(runner.invoke, main, list(args))

    common = ["--url", nats_url, "--name", swarm_name, "--json"]
    creds = tmp_path / "brad.creds.json"
    added = await invoke("agents", "add", "brad", "--out", str(creds), *common)
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["agent"] == "brad"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    listed = json.loads((await invoke("agents", "list", *common)).stdout)
    assert [a["agent"] for a in listed["agents"]] == ["brad"]
    base = ["--url", nats_url, "--name", swarm_name, "--agent", "brad", "--instance", "cli"]
    ok = await invoke("remember", "signed from the CLI", *base, "--creds", str(creds))
    assert ok.exit_code == 0, ok.output + ok.stderr
    refused = await invoke("remember", "no creds", *base)
    assert refused.exit_code == 1
    assert "unsigned" in refused.stderr
    revoked = await invoke("agents", "revoke", "brad", *common)
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    after = await invoke("remember", "after revoke", *base, "--creds", str(creds))
    assert after.exit_code == 1
    assert "revoked" in after.stderr
