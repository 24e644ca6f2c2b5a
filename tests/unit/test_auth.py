"""NATS users from the agent registry: keys, permissions, the rendered config."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import nkeys
import pytest

from swarm.auth import (
    ADMIN,
    agent_permissions,
    authorization,
    inbox_prefix,
    operator_credentials,
    server_auth,
    user_public_key,
    user_seed,
)
from swarm.errors import ConfigError
from swarm.identity import AgentEntry, Credentials


def test_the_nkey_user_is_the_agents_own_ed25519_key():
    creds = Credentials.generate("team", "brad")
    pair = nkeys.from_seed(bytearray(user_seed(creds).encode()))
    assert user_seed(creds).startswith("SU")
    assert pair.public_key.decode() == user_public_key(creds.public_key)
    assert user_public_key(creds.public_key).startswith("U")
    signature = pair.sign(b"nonce")
    assert creds.signing_key().sign(b"nonce").signature == signature


def test_credentials_files_without_a_role_are_an_agents():
    creds = Credentials.generate("team", "brad")
    old = json.loads(creds.model_dump_json())
    del old["role"]
    loaded = Credentials.model_validate(old)
    assert loaded.role == "agent"
    assert loaded.principal == "brad"
    assert Credentials.generate("team", "admin", role="admin").principal == ADMIN


def test_an_agent_may_publish_only_its_inboxes_and_requests_naming_itself():
    perms = agent_permissions("team", "brad")
    assert perms == {
        "publish": {"allow": ["swarm.team.inbox.brad.*", "swarm.team.api.*.brad"]},
        "subscribe": {"allow": ["_SWARM_INBOX.team.brad.>"]},
    }
    assert inbox_prefix("team", "brad") + ".>" in perms["subscribe"]["allow"]


def test_revoked_agents_get_no_user_and_operators_get_every_permission():
    brad, ann = Credentials.generate("team", "brad"), Credentials.generate("team", "ann")
    admin = Credentials.generate("team", "admin", role="admin")
    entries = [
        AgentEntry(agent="brad", public_key=brad.public_key),
        AgentEntry(agent="ann", public_key=ann.public_key, revoked_at=datetime.now(UTC)),
    ]
    text = authorization("team", entries, operators=[admin])
    assert user_public_key(brad.public_key) in text
    assert user_public_key(ann.public_key) not in text
    admin_line = next(line for line in text.splitlines() if ADMIN in line)
    assert "permissions" not in admin_line


def test_server_auth_is_open_only_while_the_registry_is_empty():
    admin = Credentials.generate("team", "admin", role="admin")
    brad = Credentials.generate("team", "brad")
    revoked = AgentEntry(agent="brad", public_key=brad.public_key, revoked_at=datetime.now(UTC))
    assert 'no_auth_user: "anonymous"' in server_auth("team", [], [admin])
    assert "no_auth_user" not in server_auth("team", [revoked], [admin])  # never reopens
    assert "no_auth_user" not in server_auth("team", None, [admin])  # unknown: closed


def test_operator_credentials_are_made_once_and_kept_secret(tmp_path):
    service, admin = operator_credentials(tmp_path, "team")
    assert (service.role, admin.role) == ("service", "admin")
    assert oct((tmp_path / "admin.creds.json").stat().st_mode & 0o777) == "0o600"
    assert operator_credentials(tmp_path, "team") == (service, admin)
    Credentials.generate("team", "brad").save(tmp_path / "admin.creds.json")
    with pytest.raises(ConfigError, match="not the admin's"):
        operator_credentials(tmp_path, "team")


def test_answers_go_only_under_the_requesters_own_reply_prefix() -> None:
    from swarm.auth import may_answer_to  # noqa: PLC0415

    assert may_answer_to("s", "brad", "_SWARM_INBOX.s.brad.abc.1")
    assert not may_answer_to("s", "brad", "_SWARM_INBOX.s.ann.abc.1")
    assert not may_answer_to("s", "brad", "_SWARM_INBOX.s.bradley.x")  # a longer name
    assert not may_answer_to("s", "brad", "_SWARM_INBOX.other.brad.x")  # another swarm
    assert may_answer_to("s", "brad", "_INBOX.xyz")  # outside the prefixes: no one else's
