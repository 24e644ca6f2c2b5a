"""NATS subject and stream names for one swarm.

Subjects put the writer's agent before the memory id, so auditing one agent or
rebuilding one memory is a filtered read of the log, never a scan::

    swarm.<swarm>.inbox.<agent>.<instance>     proposals (INBOX stream, work queue)
    swarm.<swarm>.log.<agent>.<memory_id>      accepted events (LOG stream, the truth)
    swarm.<swarm>.sys.<topic>[.<key>]          system records: laws, approvals (LOG stream)
    swarm.<swarm>.rejected.<agent>             rejection records (REJECTED stream)
    swarm.<swarm>.api.<operation>.<requester>  read endpoints (request/reply)
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.errors import ConfigError
from swarm.events import is_valid_name

__all__ = ["Subjects"]


@dataclass(frozen=True)
class Subjects:
    swarm: str

    def __post_init__(self) -> None:
        if not is_valid_name(self.swarm):
            raise ConfigError(
                f"invalid swarm name {self.swarm!r}: use lower-case letters, digits, '-' or '_'"
            )

    @property
    def _prefix(self) -> str:
        return f"swarm.{self.swarm}"

    @property
    def _stream_prefix(self) -> str:
        # '-' stays '-': "team-a" and "team_a" must not share streams.
        return "SWARM_" + self.swarm.upper()

    # streams
    @property
    def inbox_stream(self) -> str:
        return f"{self._stream_prefix}_INBOX"

    @property
    def log_stream(self) -> str:
        return f"{self._stream_prefix}_LOG"

    @property
    def rejected_stream(self) -> str:
        return f"{self._stream_prefix}_REJECTED"

    @property
    def agents_bucket(self) -> str:
        """The KV bucket of the agent registry."""
        return f"{self._stream_prefix}_AGENTS"

    # subjects
    def inbox(self, agent: str, instance: str) -> str:
        return f"{self._prefix}.inbox.{agent}.{instance}"

    @property
    def inbox_all(self) -> str:
        return f"{self._prefix}.inbox.>"

    def log(self, agent: str, memory_id: str) -> str:
        return f"{self._prefix}.log.{agent}.{memory_id}"

    @property
    def log_all(self) -> str:
        return f"{self._prefix}.log.>"

    def log_of_memory(self, memory_id: str) -> str:
        return f"{self._prefix}.log.*.{memory_id}"

    def sys(self, topic: str, key: str | None = None) -> str:
        """A system record's subject (in the LOG stream): ``laws``, ``proposals.<id>``."""
        return f"{self._prefix}.sys.{topic}" + (f".{key}" if key else "")

    @property
    def sys_all(self) -> str:
        return f"{self._prefix}.sys.>"

    def is_sys(self, subject: str) -> bool:
        return subject.startswith(f"{self._prefix}.sys.")

    def rejected(self, agent: str) -> str:
        return f"{self._prefix}.rejected.{agent}"

    @property
    def rejected_all(self) -> str:
        return f"{self._prefix}.rejected.>"

    def api(self, operation: str, requester: str) -> str:
        """A read endpoint, naming who asks as the last token (``*``: anyone, to serve).

        With auth on, the server lets an agent publish only requests naming itself,
        so the service can trust the token (see swarm.auth).
        """
        return f"{self._prefix}.api.{operation}.{requester}"

    def parse_api(self, subject: str) -> tuple[str, str] | None:
        """The (operation, requester) an API subject names, or None if it is not one."""
        parts = subject.split(".")
        if len(parts) != 5 or parts[:3] != ["swarm", self.swarm, "api"]:
            return None
        return parts[3], parts[4]

    def parse_inbox(self, subject: str) -> tuple[str, str] | None:
        """The (agent, instance) an inbox subject names, or None if it is not one."""
        parts = subject.split(".")
        if len(parts) != 5 or parts[:3] != ["swarm", self.swarm, "inbox"]:
            return None
        return parts[3], parts[4]
