"""Run `swarm up` as a real child process, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


STARTED: list[UpProcess] = []


def kill_leftovers() -> None:
    """Kill every `swarm up` a test started and did not stop (a failed test's)."""
    for up in STARTED:
        if up.proc is not None and up.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.proc.pid, signal.SIGKILL)
    STARTED.clear()


class UpProcess:
    def __init__(self, *args: str, data: Path, env: dict[str, str] | None = None) -> None:
        self.args = ["up", "--data", str(data), "--json", *args]
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict = {}
        self.stderr_path = data / "up.stderr.log"

    def start(self, timeout: float = 30.0) -> UpProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SWARM_LOG_LEVEL": "warning", **self.env}
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("a") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *self.args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("{"):
                self.info = json.loads(line)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"swarm up exited {self.proc.returncode}: "
                    f"{self.stderr_path.read_text()[-2000:]}"
                )
        raise TimeoutError("swarm up did not report ready")

    def kill(self) -> None:
        """SIGKILL the whole process group (service and its embedded nats-server)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
