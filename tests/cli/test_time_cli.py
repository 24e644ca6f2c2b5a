"""`swarm get/recall --as-of`, readable `swarm history`, `swarm replay`, `--data` reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from projections.service import SwarmService
from tests.integration.stack import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def swarm(service: SwarmService, nats_url: str, swarm_name: str) -> Any:
    """Run `swarm ...` against the in-process service (in a thread: it shares our loop)."""

    async def run(*args: str, agent: str = "brad", code: int = 0) -> Result:
        common = ["--url", nats_url, "--name", swarm_name]
        if args[0] != "replay":  # an admin command: no agent identity
            common += ["--agent", agent, "--instance", "cli"]
        else:  # the service's keystore opens the sealed content for the copy
            assert service.keys is not None
            common += ["--keys", str(service.keys.path)]
        result = await asyncio.to_thread(CliRunner().invoke, main, [*args, *common])
        assert result.exit_code == code, result.output + result.stderr
        return result

    async def run_json(*args: str, agent: str = "brad") -> Any:
        return json.loads((await run(*args, "--json", agent=agent)).stdout)

    run.json = run_json  # type: ignore[attr-defined]
    return run


async def test_get_as_of_and_readable_history(swarm: Any) -> None:
    first = await swarm.json("remember", "Nightly backups run at 02:00 UTC", "--tag", "ops")
    moved = await swarm.json("update", first["id"], "--text", "Nightly backups run at 03:00 UTC",
                             "--tag", "db", "--untag", "ops")  # fmt: skip
    await swarm.json("reinforce", first["id"], agent="ann")
    last = await swarm.json("forget", first["id"], "--reason", "moved to the runbook")
    then = await swarm.json("get", first["id"], "--as-of", str(first["seq"]), "--after",
                            str(last["seq"]))  # fmt: skip
    assert (then["content"], then["tags"], then["as_of"]) == (
        "Nightly backups run at 02:00 UTC",
        ["ops"],
        first["seq"],
    )
    text = (await swarm("get", first["id"], "--as-of", str(moved["seq"]))).stdout
    assert text.startswith(f"as of seq {moved['seq']}:\n{first['id']}")
    assert "03:00" in text

    history = (await swarm("history", first["id"])).stdout
    assert "brad@cli" in history and "ann@cli" in history
    assert "+ Nightly backups run at 02:00 UTC" in history
    assert "content: Nightly backups run at [-02:00-]{+03:00+} UTC" in history
    assert "tags: +db -ops" in history
    assert "recalled: 0 -> 1" in history
    assert "forgotten: moved to the runbook" in history
    versions = (await swarm.json("history", first["id"]))["versions"]
    assert [v["author"] for v in versions] == ["brad@cli", "brad@cli", "ann@cli", "brad@cli"]
    assert versions[2]["changes"] == {"recall_count": {"from": 0, "to": 1}}


async def test_recall_as_of_a_time(swarm: Any) -> None:
    old = await swarm.json("remember", "The on-call rota changes every Monday")
    at = (await swarm.json("history", old["id"], "--after", str(old["seq"])))["versions"][0]["at"]
    await swarm.json("update", old["id"], "--text", "The on-call rota changes every Tuesday")
    then = await swarm.json("recall", "on-call rota", "--as-of", at, "--after", str(old["seq"]))
    assert [r["content"] for r in then["results"]] == ["The on-call rota changes every Monday"]
    now = await swarm.json("recall", "on-call rota")
    assert [r["content"] for r in now["results"]] == ["The on-call rota changes every Tuesday"]


async def test_replay_into_a_directory_then_read_it_offline(
    swarm: Any, tmp_path: Path, swarm_name: str
) -> None:
    kept = await swarm.json("remember", "The release train leaves on Thursdays", "--tag", "release")
    secret = await swarm.json("remember", "Ann keeps the spare key", "--private", agent="ann")
    later = await swarm.json("remember", "Written after the replay point")
    copy = tmp_path / "copy"
    summary = await swarm.json("replay", "--until", str(secret["seq"]), "--into", str(copy))
    assert (summary["seq"], summary["until_seq"], summary["swarm"]) == (
        secret["seq"],
        secret["seq"],
        swarm_name,
    )
    assert {"events", "seconds", "rate", "duckdb", "lancedb"} <= set(summary)
    assert Path(summary["duckdb"]) == copy / "swarms" / swarm_name / "state.duckdb"

    offline = await swarm.json("get", kept["id"], "--data", str(copy))
    assert offline == await swarm.json("get", kept["id"])
    assert await swarm.json("history", kept["id"], "--data", str(copy)) == await swarm.json(
        "history", kept["id"]
    )
    found = await swarm.json("recall", "release train", "--data", str(copy))
    assert found == await swarm.json("recall", "release train", "--as-of", str(secret["seq"]))
    await swarm("get", later["id"], "--data", str(copy), code=1)  # after the point
    await swarm("get", secret["id"], "--data", str(copy), code=1)  # private to ann
    assert (await swarm.json("get", secret["id"], "--data", str(copy), agent="ann"))["private"]
    status = await swarm.json("status", "--data", str(copy))
    assert (status["projected_seq"], status["log_seq"]) == (secret["seq"], None)
    assert status["replay"]["status"] == "complete"

    human = (await swarm("replay", "--into", str(copy))).stdout  # resumes up to the end
    assert f"resumed from seq {secret['seq']}" in human
    assert (await swarm.json("get", later["id"], "--data", str(copy)))["id"] == later["id"]


async def test_time_options_fail_with_one_clear_line(
    swarm: Any, tmp_path: Path, service: SwarmService, swarm_name: str
) -> None:
    memory = await swarm.json("remember", "Something to look at")
    bad = await swarm("get", memory["id"], "--as-of", "last tuesday", code=2)
    assert "neither a log sequence nor an ISO-8601 time" in bad.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = await swarm("replay", "--into", str(tmp_path / "busy"), code=1)
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "not empty" in refused.stderr
    both = await swarm(
        "get", memory["id"], "--data", str(tmp_path / "busy"), "--after", "1", code=1
    )
    assert "--after waits for the service" in both.stderr
    beyond = await swarm("get", memory["id"], "--as-of", str(memory["seq"] + 500), code=1)
    assert "beyond the end of the log" in beyond.stderr

    # The live data directory, from another process: DuckDB keeps it locked.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", "get", memory["id"], "--data", str(service.data_dir),
         "--name", swarm_name],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "is open in a running service" in result.stderr
