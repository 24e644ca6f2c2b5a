"""Laws as data: laws.yaml and SOUL.md loading, natural-language laws, the kind registry."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.errors import ConfigError
from swarm.laws import Law, LawSet, Outcome, Proposal, trial_proposal
from swarm.laws.kinds import BUILTIN_KINDS, Scoped, law_from_check
from swarm.laws.registry import Registry, build, build_law_set, known_kinds
from swarm.laws.spec import (
    NATURAL_LAWS,
    LawSpec,
    Scope,
    agent_id,
    load_file,
    load_laws,
    load_soul,
    parse_laws,
    parse_soul,
    understand,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def soul(front_matter: str, body: str = "# Notes\n") -> str:
    return f"---\n{front_matter}---\n{body}"


# -- LawSpec --------------------------------------------------------------------------------------


def test_spec_defaults_to_the_whole_swarm_and_the_kinds_usual_action() -> None:
    spec = LawSpec.model_validate({"id": "x", "kind": "max_content", "params": {"chars": 5}})
    assert spec.scope == Scope()
    assert spec.scope.whole_swarm
    assert spec.action == "reject"
    assert LawSpec.model_validate({"id": "d", "kind": "destructive"}).action == "require_approval"
    assert LawSpec.model_validate({"id": "c", "kind": "contradiction"}).action == "flag"


def test_spec_is_frozen_and_compares_by_content_not_by_origin() -> None:
    a = parse_laws("laws: [{id: x, kind: destructive}]", "a.yaml")[0]
    b = parse_laws("laws: [{id: x, kind: destructive}]", "b.yaml")[0]
    assert a == b
    assert hash(a) == hash(b)
    assert a.origin != b.origin
    with pytest.raises(ValueError, match="frozen"):
        a.id = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("law", "message"),
    [
        ("{id: Bad Id, kind: destructive}", r"law #1 \(Bad Id\): id: String should match"),
        ("{id: x, kind: destructive, acton: flag}", r"acton: unknown key \(known: id, desc"),
        ("{id: x, kind: destructive, action: delete}", r"law #1 \(x\): action: Input should be"),
        ("{id: x, kind: destructive, scope: {agent: [a]}}", r"scope.agent: unknown key"),
        ("{id: x, kind: destructive, scope: {agents: []}}", r"scope.agents: .*applies the law to"),
        ("{id: x, kind: destructive, scope: {kinds: [NOT A KIND]}}", r"scope.kinds.0"),
        ("{id: x}", r"law #1 \(x\): kind: Field required"),
        ("42", r"law #1: a law is a sentence or a mapping, not int"),
    ],
)
def test_a_bad_law_is_a_config_error_naming_the_file_and_the_law(law: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^team\.yaml: .*" + message):
        parse_laws(f"laws:\n  - {law}\n", "team.yaml")


def test_duplicate_law_ids_name_both_positions() -> None:
    text = (
        "laws:\n  - {id: a, kind: destructive}\n  - {id: b, kind: contradiction}\n"
        "  - {id: a, kind: contradiction}\n"
    )
    with pytest.raises(
        ConfigError, match=r"t\.yaml: law #3 \(a\): law id 'a' is already used by law #1"
    ):
        parse_laws(text, "t.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("laws: [", r"invalid YAML at line 1"),
        ("laws:\n  - {id: a, id: b, kind: destructive}\n", r"line 2, .*duplicate key 'id'"),
        ("rules: []\n", r"expected a top-level `laws:` list"),
        ("laws: []\nversion: 2\n", r"unknown key 'version' \(known: laws\)"),
        ("laws: {id: a}\n", r"laws must be a list"),
        ("", r"expected a top-level `laws:` list"),
        ("- a\n- b\n", r"expected a top-level `laws:` list"),
    ],
)
def test_a_bad_laws_file_is_a_config_error_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^laws\.yaml: .*" + message):
        parse_laws(text, "laws.yaml")


def test_an_empty_laws_list_is_valid() -> None:
    assert parse_laws("laws: []\n") == []
    assert parse_laws("laws:\n") == []


def test_load_laws_reads_a_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "laws.yaml"
    path.write_text("laws:\n  - {id: a, kind: max_content, params: {chars: 3}}\n")
    (spec,) = load_laws(path)
    assert spec.params == {"chars": 3}
    assert spec.origin == f"{path}: law #1 (a)"
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_laws(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"laws: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_laws(tmp_path / "bin.yaml")


def test_a_sentence_in_laws_yaml_becomes_a_whole_swarm_law() -> None:
    (spec,) = parse_laws('laws: ["Never expose private data"]\n')
    assert (spec.id, spec.kind, spec.action) == ("no-private-data", "private_data", "reject")
    assert spec.scope.whole_swarm


# -- natural language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "kind", "action"),
    [
        ("Never expose private data", "private_data", "reject"),
        ("Protect personal information.", "private_data", "reject"),
        ("Keep SECRETS secret", "private_data", "reject"),
        ("Do not leak credentials", "private_data", "reject"),
        ("Ask before destructive actions", "destructive", "require_approval"),
        ("Nothing destructive without a human", "destructive", "require_approval"),
        ("Escalate when uncertain", "contradiction", "flag"),
        ("Never contradict a colleague silently", "contradiction", "flag"),
    ],
)
def test_sentences_map_onto_built_in_kinds(sentence: str, kind: str, action: str) -> None:
    natural = understand(sentence)
    assert (natural.kind, natural.action) == (kind, action)


def test_an_unmappable_sentence_is_named_with_the_phrases_understood() -> None:
    with pytest.raises(ConfigError) as info:
        understand("Be kind to other agents")
    message = str(info.value)
    assert "'Be kind to other agents'" in message
    for natural in NATURAL_LAWS:
        for phrase in natural.phrases:
            assert repr(phrase) in message


def test_a_sentence_with_several_laws_asks_for_one_per_line() -> None:
    with pytest.raises(ConfigError, match="one law per line"):
        understand("Never expose secrets and ask before destructive actions")


def test_a_word_inside_another_word_does_not_count() -> None:
    with pytest.raises(ConfigError):
        understand("Keep a warm personality")  # "personal" only as a word of its own


# -- SOUL.md --------------------------------------------------------------------------------------

SOUL = soul(
    "name: Release Planner\n"
    "personality: calm\n"
    "principles: [write things down]\n"
    "safety:\n"
    "  laws:\n"
    "    - Never expose private data\n"
    "    - Ask before destructive actions\n"
    "    - Escalate when uncertain\n"
    "    - {id: short, kind: max_content, params: {chars: 80}, scope: {kinds: [decision]}}\n"
)


def test_soul_laws_are_scoped_to_the_agent_its_name_stands_for() -> None:
    specs = parse_soul(SOUL)
    assert [(s.id, s.kind, s.action) for s in specs] == [
        ("release-planner-no-private-data", "private_data", "reject"),
        ("release-planner-ask-before-destructive", "destructive", "require_approval"),
        ("release-planner-flag-contradictions", "contradiction", "flag"),
        ("short", "max_content", "reject"),
    ]
    assert all(s.scope.agents == ("release-planner",) for s in specs)
    assert specs[3].scope.kinds == ("decision",)
    assert specs[0].description == "Never expose private data"
    assert specs[0].params == {}


def test_soul_in_a_fenced_yaml_block_is_read_too() -> None:
    text = (
        "# Planner\n\nSome prose.\n\n```yaml\nname: planner\nsafety:\n  laws:\n"
        "    - Keep secrets\n```\n\nMore prose.\n"
    )
    (spec,) = parse_soul(text)
    assert spec.id == "planner-no-private-data"
    assert spec.scope.agents == ("planner",)


def test_soul_agent_key_overrides_the_name() -> None:
    (spec,) = parse_soul(soul("name: Marcus Aurelius\nagent: stoic\nsafety: {laws: [secrets]}\n"))
    assert spec.scope.agents == ("stoic",)


def test_soul_without_safety_laws_has_none() -> None:
    assert parse_soul(soul("name: quiet\nversion: 1.0.0\ntone: dry\n")) == []


def test_two_sentences_for_the_same_kind_get_distinct_ids() -> None:
    specs = parse_soul(soul("name: a\nsafety: {laws: [Keep secrets, Protect personal data]}\n"))
    assert [s.id for s in specs] == ["a-no-private-data", "a-no-private-data-2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter at all\n", r"no YAML front matter"),
        ("---\nname: a\n", r"front matter opened by --- on line 1 is not closed"),
        (soul("name: [a\n"), r"invalid YAML at line [23]"),
        (soul("personality: calm\n"), r"needs a `name`"),
        (soul("name: '!!!'\n"), r"not a valid agent id"),
        (soul("name: a\nprinciples: calm\n"), r"principles must be a list"),
        (soul("name: a\nsafety: [x]\n"), r"safety must be a mapping"),
        (soul("name: a\nsafety: {rules: []}\n"), r"unknown key safety\.rules"),
        (soul("name: a\nsafety: {laws: [Be nice]}\n"), r"law #1: the sentence 'Be nice'"),
        (
            soul("name: a\nsafety: {laws: [{id: x, kind: destructive, scope: {agents: [b]}}]}\n"),
            r"law #1 \(x\): a SOUL\.md law applies to its own agent \(a\) only",
        ),
        (
            soul("name: a\nsafety: {laws: [{id: x, kind: destructive, action: maybe}]}\n"),
            r"law #1 \(x\): action",
        ),
    ],
)
def test_a_bad_soul_is_a_config_error_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^SOUL\.md: .*" + message):
        parse_soul(text, "SOUL.md")


def test_soul_error_lines_count_from_the_top_of_the_file() -> None:
    text = "# Title\n\n```yaml\nname: a\nsafety: {laws: [\n```\n"
    with pytest.raises(ConfigError, match=r"line [67]"):
        parse_soul(text)


def test_agent_id_slugs_a_display_name() -> None:
    assert agent_id("Release Planner") == "release-planner"
    assert agent_id("  Zoë  the_Great! ") == "zoe-the_great"
    assert agent_id("***") == ""


def test_load_file_tells_a_soul_from_a_laws_file(tmp_path: Path) -> None:
    laws = tmp_path / "rules"
    laws.write_text("laws:\n  - {id: a, kind: destructive}\n")
    soul_file = tmp_path / "planner.txt"
    soul_file.write_text(soul("name: p\nsafety: {laws: [secrets]}\n"))
    assert load_file(laws)[0] == "laws"
    assert load_file(soul_file)[0] == "soul"
    assert load_file(EXAMPLES / "laws.yaml")[0] == "laws"
    assert load_file(EXAMPLES / "SOUL.md")[0] == "soul"


# -- the examples and the docs --------------------------------------------------------------------


def test_the_examples_load_and_build() -> None:
    specs = load_laws(EXAMPLES / "laws.yaml")
    assert {s.kind for s in specs} == set(BUILTIN_KINDS)
    build_law_set(specs, allow_approval=True)
    soul_specs = load_soul(EXAMPLES / "SOUL.md")
    assert all(s.scope.agents == ("planner",) for s in soul_specs)
    build_law_set(soul_specs, allow_approval=True)


def test_the_docs_show_the_examples_as_they_are() -> None:
    docs = (ROOT / "docs" / "laws.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:yaml|markdown)\n(.*?)^```$", docs, re.M | re.S)
    for name in ("laws.yaml", "SOUL.md"):
        assert (EXAMPLES / name).read_text(encoding="utf-8") in blocks, name


# -- registry -------------------------------------------------------------------------------------


def test_build_makes_each_built_in_kind() -> None:
    specs = load_laws(EXAMPLES / "laws.yaml")
    laws = [build(s) for s in specs]
    assert [law.id for law in laws] == [s.id for s in specs]
    assert [law.action for law in laws] == [s.action for s in specs]
    scoped = [law for law in laws if isinstance(law, Scoped)]
    assert [law.id for law in scoped] == ["short-decisions", "researcher-kinds"]


def test_unknown_kind_lists_the_known_kinds() -> None:
    (spec,) = parse_laws("laws: [{id: a, kind: telepathy}]", "t.yaml")
    with pytest.raises(ConfigError) as info:
        build(spec)
    message = str(info.value)
    assert message.startswith("t.yaml: law #1 (a): unknown law kind 'telepathy'")
    for kind in BUILTIN_KINDS:
        assert kind in message


@pytest.mark.parametrize(
    ("law", "message"),
    [
        ("{id: a, kind: max_content}", r"chars: Field required"),
        ("{id: a, kind: max_content, params: {chars: 0}}", r"greater than 0"),
        ("{id: a, kind: max_content, params: {chars: 10, char: 3}}", r"char: unknown param"),
        ("{id: a, kind: deny_tags, params: {tags: []}}", r"tags: "),
        ("{id: a, kind: kind_allowed, params: {kinds: [Fact]}}", r"kinds.0"),
        ("{id: a, kind: private_data, params: {kinds: [dna]}}", r"unknown private data kind 'dna'"),
        ("{id: a, kind: destructive, params: {all: true}}", r"all: unknown param"),
    ],
)
def test_bad_params_are_a_config_error_naming_the_law(law: str, message: str) -> None:
    (spec,) = parse_laws(f"laws: [{law}]", "p.yaml")
    with pytest.raises(ConfigError, match=r"^p\.yaml: law #1 \(a\): .*" + message):
        build(spec)


def test_build_law_set_refuses_an_id_declared_in_two_files() -> None:
    a = parse_laws("laws: [{id: same, kind: destructive, action: flag}]", "a.yaml")
    b = parse_laws("laws: [{id: same, kind: contradiction}]", "b.yaml")
    with pytest.raises(ConfigError, match=r"b\.yaml: law #1 \(same\): .*also declared at a\.yaml"):
        build_law_set([*a, *b])


def test_build_law_set_needs_an_approval_flow_for_require_approval() -> None:
    specs = parse_laws("laws: [{id: d, kind: destructive}]", "d.yaml")
    with pytest.raises(ConfigError, match=r"d\.yaml: law #1 \(d\): .*not supported here"):
        build_law_set(specs)
    assert [law.id for law in build_law_set(specs, allow_approval=True).laws] == ["d"]


def test_law_set_version_follows_params_scope_and_action() -> None:
    def version(text: str) -> str:
        return build_law_set(parse_laws(text), allow_approval=True).version

    base = version("laws: [{id: a, kind: max_content, params: {chars: 5}}]")
    assert base == version("laws: [{id: a, kind: max_content, params: {chars: 5}}]")
    assert base != version("laws: [{id: a, kind: max_content, params: {chars: 6}}]")
    assert base != version("laws: [{id: a, kind: max_content, params: {chars: 5}, action: flag}]")
    assert base != version(
        "laws: [{id: a, kind: max_content, params: {chars: 5}, scope: {agents: [x]}}]"
    )


def shouting_factory(spec: LawSpec) -> Law:
    limit = float(spec.params.get("max_ratio", 0.5))

    def check(proposal: Proposal) -> Outcome:
        letters = [c for c in proposal.after.content if c.isalpha()]
        upper = sum(c.isupper() for c in letters)
        if letters and upper / len(letters) > limit:
            return Outcome(ok=False, reason="too much shouting", where="content")
        return Outcome.passed()

    return law_from_check(spec, check, {"max_ratio": limit})


def another_factory(spec: LawSpec) -> Law:
    return shouting_factory(spec)


def test_register_adds_a_kind_to_a_registry() -> None:
    registry = Registry(entry_points=False)
    registry.register("no_shouting")(shouting_factory)
    assert "no_shouting" in registry.known_kinds()
    (spec,) = parse_laws("laws: [{id: calm, kind: no_shouting, action: flag}]")
    laws = registry.build_law_set([spec])
    assert laws.judge(trial_proposal("PLEASE READ THIS")).decision == "flag"
    assert laws.judge(trial_proposal("please read this")).decision == "accept"
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("no_shouting")(another_factory)
    with pytest.raises(ConfigError, match="lower-case"):
        registry.register("No Shouting")


class FakeEntryPoint:
    def __init__(self, name: str, target: object, value: str = "fake_pkg:factory") -> None:
        self.name, self.value, self.group = name, value, "swarm.laws"
        self._target = target

    def load(self) -> object:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    installed: list[FakeEntryPoint] = []

    def fake(**kwargs: object) -> list[FakeEntryPoint]:
        assert kwargs == {"group": "swarm.laws"}
        return list(installed)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return installed


def test_a_kind_from_an_entry_point_builds_and_runs(entry_points: list[FakeEntryPoint]) -> None:
    entry_points.append(FakeEntryPoint("no_shouting", shouting_factory))
    assert "no_shouting" in known_kinds()
    (spec,) = parse_laws(
        "laws: [{id: calm, kind: no_shouting, params: {max_ratio: 0.8}, action: reject}]"
    )
    laws = build_law_set([spec])
    judgement = laws.judge(trial_proposal("STOP DOING THAT"))
    assert judgement.decision == "reject"
    assert judgement.results[-1].reason == "too much shouting"
    assert laws.judge(trial_proposal("Stop doing that")).decision == "accept"


def test_a_built_in_kind_wins_over_an_entry_point_of_the_same_name(
    entry_points: list[FakeEntryPoint],
) -> None:
    entry_points.append(FakeEntryPoint("destructive", RuntimeError("never loaded")))
    (spec,) = parse_laws("laws: [{id: d, kind: destructive, action: flag}]")
    assert build(spec).id == "d"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (ImportError("no module named fake_pkg"), r"cannot load entry point 'fake_pkg:factory'"),
        ("not callable", r"is not a factory function"),
        (lambda spec: 42, r"returned a int, not a law"),
        (lambda spec: 1 / 0, r"could not build the law: ZeroDivisionError"),
    ],
)
def test_a_broken_entry_point_is_a_config_error_naming_the_law(
    entry_points: list[FakeEntryPoint], target: object, message: str
) -> None:
    entry_points.append(FakeEntryPoint("broken", target))
    (spec,) = parse_laws("laws: [{id: b, kind: broken}]", "x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.yaml: law #1 \(b\): .*" + message):
        build(spec)


def test_a_factory_must_keep_the_specs_id_and_action(entry_points: list[FakeEntryPoint]) -> None:
    def sloppy(spec: LawSpec) -> object:
        return law_from_check(spec.model_copy(update={"id": "other"}), lambda p: Outcome.passed())

    entry_points.append(FakeEntryPoint("sloppy", sloppy))
    (spec,) = parse_laws("laws: [{id: mine, kind: sloppy}]")
    with pytest.raises(ConfigError, match=r"returned law 'other'.*the spec says 'mine'"):
        build(spec)


def test_law_set_rejects_require_approval_unless_allowed() -> None:
    (spec,) = parse_laws("laws: [{id: d, kind: destructive}]")
    law = build(spec)
    with pytest.raises(ConfigError, match="not supported here"):
        LawSet([law])
    assert LawSet([law], allow_approval=True).laws == (law,)


def test_the_python_examples_of_the_laws_page_run() -> None:
    """docs/laws.md's blocks need no server; run them here too, in a fresh interpreter."""
    docs = (ROOT / "docs" / "laws.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", docs, re.M | re.S)
    assert blocks
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["flag", "accept"]
