"""Who may do what on the NATS server: nkey users and their permissions.

Every principal connects as an nkey user derived from its own ed25519 key (the
one that signs its envelopes), so one key file is both its NATS login and its
signature. Principals are the tokens subjects use for requesters:

* an agent: its name. It may publish only to its own inboxes
  (``swarm.<s>.inbox.<agent>.*``) and to read requests naming itself
  (``swarm.<s>.api.*.<agent>``), and subscribe only to its own reply prefix
  (``_SWARM_INBOX.<s>.<agent>.>``). The server refuses the rest: the streams'
  subjects, ``$JS.API``, ``$KV``, other agents' inboxes and replies.
* ``_admin``, the operator, and ``_service``, the gate and projector: every
  permission. Agent names cannot start with ``_``.

While no agent is registered the swarm is open: anonymous connections get every
permission (``no_auth_user``). Once one is, the server refuses them.

This module is pure (it renders configuration text); :mod:`swarm.server` writes
it and reloads the server, ``swarm up`` does so when the registry changes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import nkeys

from swarm.errors import ConfigError
from swarm.identity import AgentEntry, Credentials

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "SERVICE",
    "agent_permissions",
    "authorization",
    "inbox_prefix",
    "may_answer_to",
    "operator_credentials",
    "server_auth",
    "user_public_key",
    "user_seed",
]

#: The principal token of the operator: reads everything, administers the registry.
ADMIN = "_admin"
#: The principal token of the service (gate, projector, read endpoints).
SERVICE = "_service"
#: The user anonymous connections become while the swarm is open.
ANONYMOUS = "anonymous"


def user_seed(credentials: Credentials) -> str:
    """The NATS user seed ("SU…") of the credentials' ed25519 seed."""
    raw = base64.b64decode(credentials.secret_key)
    seed: bytes = nkeys.encode_seed(raw, nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def user_public_key(public_key: str) -> str:
    """The NATS user public key ("U…") of a base64 ed25519 public key."""
    src = bytearray([nkeys.PREFIX_BYTE_USER]) + base64.b64decode(public_key)
    src += nkeys.crc16(src).to_bytes(2, byteorder="little")
    return base64.b32encode(bytes(src)).decode().rstrip("=")


def inbox_prefix(swarm: str, principal: str) -> str:
    """Where a principal's replies (read answers, gate receipts) arrive."""
    return f"_SWARM_INBOX.{swarm}.{principal}"


def may_answer_to(swarm: str, principal: str, reply: str) -> bool:
    """Whether the service may send ``principal``'s answer to ``reply``.

    A requester picks its reply subject; the service may publish anywhere. So an
    answer never goes under *another* principal's reply prefix (where that one
    would receive it): only under the requester's own, or outside the prefixes.
    """
    root = "_SWARM_INBOX."
    return not reply.startswith(root) or reply.startswith(inbox_prefix(swarm, principal) + ".")


def agent_permissions(swarm: str, agent: str) -> dict[str, dict[str, list[str]]]:
    """What the server lets one agent do; everything else is denied."""
    return {
        "publish": {"allow": [f"swarm.{swarm}.inbox.{agent}.*", f"swarm.{swarm}.api.*.{agent}"]},
        "subscribe": {"allow": [f"{inbox_prefix(swarm, agent)}.>"]},
    }


def _user(nkey: str, comment: str, permissions: object = None) -> str:
    line = f"{{nkey: {json.dumps(nkey)}"
    if permissions is not None:
        line += f", permissions: {json.dumps(permissions)}"
    return f"    {line}}}  # {comment}"


def authorization(
    swarm: str,
    agents: Iterable[AgentEntry],
    *,
    operators: Sequence[Credentials] = (),
    open_mode: bool = False,
) -> str:
    """The ``authorization`` block: operators with every permission, one locked-down
    user per unrevoked agent, and (``open_mode``) the anonymous user."""
    users = [
        _user(user_public_key(c.public_key), f"{c.principal} (every permission)") for c in operators
    ]
    users += [
        _user(user_public_key(e.public_key), f"agent {e.agent}", agent_permissions(swarm, e.agent))
        for e in sorted(agents, key=lambda e: e.agent)
        if e.revoked_at is None
    ]
    if open_mode:
        users.append(f"    {{user: {json.dumps(ANONYMOUS)}}}  # open mode: no agent registered")
    return "authorization {\n  users = [\n" + "\n".join(users) + "\n  ]\n}\n"


def server_auth(
    swarm: str, registry: Sequence[AgentEntry] | None, operators: Sequence[Credentials]
) -> str:
    """The auth part of the embedded server's config.

    ``registry`` is every entry of the agent registry (revoked ones included), or
    None when it is not known yet (then only the operators may connect until the
    registry is read). Open mode, anonymous connections allowed, while it is empty.
    """
    open_mode = registry is not None and not registry
    text = authorization(swarm, registry or (), operators=operators, open_mode=open_mode)
    if open_mode:
        text += f"no_auth_user: {json.dumps(ANONYMOUS)}\n"
    return text


def operator_credentials(data_dir: str | Path, swarm: str) -> tuple[Credentials, Credentials]:
    """The service's and the admin's credentials under ``data_dir`` (made on first use)."""
    out = []
    for role in ("service", "admin"):
        path = Path(data_dir) / f"{role}.creds.json"
        if path.exists():
            creds = Credentials.load(path)
            if creds.role != role:
                raise ConfigError(f"{path} holds {creds.role} credentials, not the {role}'s")
        else:
            creds = Credentials.generate(swarm, role, role=role)
            creds.save(path)
        out.append(creds)
    return out[0], out[1]
