"""`swarm laws check` and `swarm laws test`: local, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.laws import laws

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(laws, [str(a) for a in args], env=env)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


def run_json(*args: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(run(*args, "--json").stdout)
    return data


# -- check ---------------------------------------------------------------------------------------


def test_check_prints_the_laws_of_a_laws_file() -> None:
    out = run("check", str(EXAMPLES / "laws.yaml")).stdout
    assert "6 laws (laws.yaml), valid" in out
    assert "ID" in out.splitlines()[1]
    assert "ask-before-forgetting-others  destructive    require_approval" in out
    assert "agents=researcher" in out
    assert "kinds=decision" in out


def test_check_json_lists_each_law_with_its_scope() -> None:
    data = run_json("check", str(EXAMPLES / "laws.yaml"))
    assert data["file"] == str(EXAMPLES / "laws.yaml")
    rows = data["laws"]
    assert isinstance(rows, list)
    assert rows[0] == {
        "id": "no-private-data",
        "kind": "private_data",
        "action": "reject",
        "scope": {"agents": None, "kinds": None},
        "description": "Never expose private data (personal data, payment cards, credentials)",
    }
    assert rows[-1]["scope"] == {"agents": ["researcher"], "kinds": None}


def test_check_reads_a_soul_and_scopes_its_laws_to_the_agent() -> None:
    data = run_json("check", str(EXAMPLES / "SOUL.md"))
    rows = data["laws"]
    assert isinstance(rows, list)
    assert [(r["id"], r["kind"], r["action"]) for r in rows] == [
        ("planner-no-private-data", "private_data", "reject"),
        ("planner-ask-before-destructive", "destructive", "require_approval"),
        ("planner-flag-contradictions", "contradiction", "flag"),
        ("planner-no-drafts", "deny_tags", "reject"),
    ]
    assert all(r["scope"] == {"agents": ["planner"], "kinds": None} for r in rows)


def test_check_tells_a_soul_by_its_content_when_the_name_says_nothing(tmp_path: Path) -> None:
    path = tmp_path / "agent-profile"
    path.write_text("---\nname: scout\nsafety:\n  laws: [Never expose private data]\n---\n")
    assert "1 law (SOUL.md), valid" in run("check", str(path)).stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("laws:\n  - {id: a, kind: destructive, acton: flag}\n", "law #1 (a): acton: unknown key"),
        ("laws:\n  - {id: a, kind: telepathy}\n", "unknown law kind 'telepathy' (known: "),
        ("laws:\n  - {id: a, kind: max_content, params: {chars: -1}}\n", "greater than 0"),
        ("laws: [\n", "invalid YAML at line"),
        (
            "laws:\n  - {id: a, kind: destructive}\n  - {id: a, kind: destructive}\n",
            "used by law #1",
        ),
    ],
)
def test_check_fails_with_one_error_line_on_an_invalid_file(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "laws.yaml"
    path.write_text(content)
    result = run("check", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: ")
    assert message in lines[0]


def test_check_fails_on_an_unmappable_soul_sentence(tmp_path: Path) -> None:
    path = tmp_path / "SOUL.md"
    path.write_text("---\nname: a\nsafety:\n  laws: [Always be cheerful]\n---\n")
    result = run("check", str(path), ok=False)
    assert result.exit_code == 1
    assert "'Always be cheerful'" in result.stderr
    assert "'never expose private data'" in result.stderr


def test_check_fails_on_a_missing_file(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "none.yaml"), ok=False)
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


# -- test ----------------------------------------------------------------------------------------


def test_test_accepts_a_harmless_memory_with_the_default_laws() -> None:
    assert run_json("test", "the release train leaves on thursdays") == {
        "verdict": "accept",
        "laws": [{"id": "no-private-data", "verdict": "pass", "reason": None}],
    }


def test_test_rejects_private_data_without_echoing_it() -> None:
    result = run("test", "call me on +1 415 555 0100")
    assert "reject" in result.stdout
    assert "verdict: reject" in result.stdout
    assert "555" not in result.stdout
    data = run_json("test", "call me on +1 415 555 0100")
    assert data["verdict"] == "reject"


def test_test_reports_pending_for_a_law_that_needs_approval() -> None:
    data = run_json(
        "test", "old plan", "--laws", str(EXAMPLES / "laws.yaml"), "--event", "forget",
        "--agent", "bob", "--owner", "alice",
    )  # fmt: skip
    assert data["verdict"] == "pending"
    rows = {r["id"]: r for r in data["laws"]}  # type: ignore[attr-defined]
    assert rows["ask-before-forgetting-others"] == {
        "id": "ask-before-forgetting-others",
        "verdict": "pending",
        "reason": "bob forgets a memory written by alice",
    }


def test_test_flags_a_rewrite_of_another_agents_memory() -> None:
    data = run_json(
        "test", "new plan", "--laws", str(EXAMPLES / "laws.yaml"), "--event", "update",
        "--agent", "bob", "--owner", "alice",
    )  # fmt: skip
    assert data["verdict"] == "flag"


def test_test_reports_laws_after_a_rejection_as_skipped() -> None:
    data = run_json(
        "test", "mail bob@example.com", "--laws", str(EXAMPLES / "laws.yaml"), "--tag", "secret"
    )
    laws_ = data["laws"]
    assert isinstance(laws_, list)
    assert data["verdict"] == "reject"
    assert laws_[0]["verdict"] == "reject"
    assert {r["verdict"] for r in laws_[1:]} == {"skipped"}


def test_test_honours_kind_tag_and_agent_scopes() -> None:
    laws_file = str(EXAMPLES / "laws.yaml")
    assert run_json("test", "a rumour", "--laws", laws_file, "--kind", "rumour")["verdict"] == (
        "accept"
    )
    as_researcher = run_json(
        "test", "a rumour", "--laws", laws_file, "--kind", "rumour", "--agent", "researcher"
    )
    assert as_researcher["verdict"] == "reject"
    assert run_json("test", "x", "--laws", laws_file, "--tag", "Secret")["verdict"] == "reject"
    long_decision = "d" * 2001
    assert (
        run_json("test", long_decision, "--laws", laws_file, "--kind", "decision")["verdict"]
        == "flag"
    )


def test_test_with_a_soul_writes_as_that_agent_by_default() -> None:
    soul = str(EXAMPLES / "SOUL.md")
    result = run("test", "draft plan", "--laws", soul, "--tag", "draft")
    assert "verdict: reject (as agent planner)" in result.stdout
    other = run_json("test", "draft plan", "--laws", soul, "--tag", "draft", "--agent", "scout")
    assert other["verdict"] == "accept"
    env = run("test", "draft plan", "--laws", soul, "--tag", "draft", env={"SWARM_AGENT": "scout"})
    assert "verdict: accept (as agent scout)" in env.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--agent", "Not An Agent"), "--agent 'Not An Agent'"),
        (("--owner", "X"), "--owner 'X'"),
        (("--kind", "Bad Kind"), "--kind 'Bad Kind'"),
        (("--laws", "/nonexistent/laws.yaml"), "cannot read"),
    ],
)
def test_test_fails_with_one_error_line_on_bad_input(args: tuple[str, ...], message: str) -> None:
    result = run("test", "text", *args, ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("0.5", 0.5),
    ],
)
def test_durations_parse_with_or_without_a_unit(text: str, seconds: float) -> None:
    import click  # noqa: PLC0415

    from cli.common import duration  # noqa: PLC0415

    param = click.Option(["--approval-ttl"])
    assert duration(click.Context(click.Command("x")), param, text) == seconds


@pytest.mark.parametrize("text", ["", "7x", "d", "-5m", "0"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    import click  # noqa: PLC0415

    from cli.common import duration  # noqa: PLC0415

    with pytest.raises(click.BadParameter, match="duration"):
        duration(click.Context(click.Command("x")), click.Option(["--x"]), text)
