"""The `swarm` command against a real `swarm up` (embedded nats-server)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli.main import main
from swarm.server import free_port
from tests.integration.stack import ROOT, UpProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    up = UpProcess("--port", str(free_port()), data=tmp_path_factory.mktemp("cli")).start()
    yield up.info["nats"]
    assert up.terminate() == 0


@pytest.fixture
def swarm(stack):
    runner = CliRunner()

    def run(*args: str, agent: str = "brad", ok: bool = True):
        result = runner.invoke(main, [*args, "--url", stack, "--agent", agent, "--instance", "cli"])
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    def run_json(*args: str, agent: str = "brad"):
        return json.loads(run(*args, "--json", agent=agent).stdout)

    run.json = run_json
    return run


def test_remember_prints_id_and_seq_as_json(swarm):
    receipt = swarm.json(
        "remember", "CLI memory about backups", "--tag", "ops", "--kind", "procedure"
    )
    assert set(receipt) >= {"id", "seq"}
    memory = swarm.json("get", receipt["id"], "--after", str(receipt["seq"]))
    assert memory["content"] == "CLI memory about backups"
    assert memory["kind"] == "procedure"
    assert memory["tags"] == ["ops"]
    for key in ("importance", "recall_count", "agent", "private", "seq"):
        assert key in memory


def test_update_reinforce_forget_and_history(swarm):
    r = swarm.json("remember", "Nightly backups run at 02:00", "--tag", "ops")
    swarm.json(
        "update", r["id"], "--text", "Nightly backups run at 03:00", "--tag", "db", "--untag", "ops"
    )
    swarm.json("reinforce", r["id"], agent="ann")
    last = swarm.json("forget", r["id"], "--reason", "moved to the runbook")
    memory = swarm.json("get", r["id"], "--after", str(last["seq"]))
    assert memory["content"] == "Nightly backups run at 03:00"
    assert memory["tags"] == ["db"]
    assert memory["recall_count"] == 1
    assert memory["forgotten"] is True
    history = swarm.json("history", r["id"])
    assert history["id"] == r["id"]
    assert [v["type"] for v in history["versions"]] == [
        "memory.remembered",
        "memory.updated",
        "memory.reinforced",
        "memory.forgotten",
    ]
    assert {"seq", "agent", "instance", "type", "at", "state"} <= set(history["versions"][0])


def test_recall_finds_another_agents_memory(swarm):
    r = swarm.json("remember", "The quarterly report is due on the 5th", agent="ann")
    found = swarm.json("recall", "quarterly report due", "-k", "3", "--after", str(r["seq"]))
    assert found["results"][0]["id"] == r["id"]
    assert {"id", "content", "score", "agent"} <= set(found["results"][0])


def test_private_memory_is_hidden_from_other_agents(swarm):
    r = swarm.json("remember", "Ann's private reminder about the dentist", "--private", agent="ann")
    found = swarm.json("recall", "private reminder dentist", "--after", str(r["seq"]))
    assert r["id"] not in [hit["id"] for hit in found["results"]]
    result = swarm("get", r["id"], "--json", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_law_rejection_is_one_line_on_stderr_and_exit_1(swarm):
    result = swarm("remember", "Mail me at someone@example.org", ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "no-private-data" in result.stderr
    assert "someone@example.org" not in result.stderr


def test_status_and_tail_speak_json(swarm):
    r = swarm.json("remember", "Status check memory")
    status = swarm.json("status")
    assert {"log_seq", "projected_seq", "lag", "memories", "rejected"} <= set(status)
    assert status["log_seq"] >= r["seq"]
    lines = swarm("tail", "--since", str(r["seq"]), "--json").stdout.strip().splitlines()
    first = json.loads(lines[0])
    assert first["seq"] == r["seq"]
    assert first["type"] == "memory.remembered"


def test_human_output_is_readable(swarm):
    out = swarm("remember", "Human readable output").stdout
    assert out.startswith("remembered ")
    assert "log seq" in out


def test_unreachable_server_is_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--url", f"nats://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach NATS")
    assert "Traceback" not in result.stderr


def test_invalid_agent_name_is_a_clear_error(swarm):
    result = swarm("remember", "x", agent="Not A Name", ok=False)
    assert result.exit_code == 1
    assert "invalid agent name" in result.stderr


def test_rejections_list_the_refusal_without_the_content(swarm):
    swarm("remember", "card 4111 1111 1111 1111", ok=False)
    rows = swarm.json("rejections")["rejections"]
    assert rows
    last = rows[-1]
    assert last["check"] == "no-private-data"
    assert last["agent"] == "brad"
    assert {"seq", "agent", "check", "reason", "at"} <= set(last)
    assert "4111" not in json.dumps(rows)
