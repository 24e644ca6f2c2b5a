"""The built-in law kinds, scopes, and how a law set judges require_approval."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm.crdt import MemoryState, new_actor
from swarm.events import (
    NAME_PATTERN,
    LawResult,
    MemoryEvent,
    MemoryForgotten,
    MemoryReinforced,
    MemoryRemembered,
    MemoryUpdated,
)
from swarm.laws import (
    Law,
    LawSet,
    LawSpec,
    Outcome,
    Pending,
    PrivateDataLaw,
    Proposal,
    default_laws,
    detectors,
    trial_proposal,
)
from swarm.laws.base import Action
from swarm.laws.kinds import Scoped
from swarm.laws.registry import build, build_law_set
from swarm.laws.spec import load_laws, load_soul, parse_laws

SWARM = "swarm-1"
MID = "01HZZZMEMORY0000000000001"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTILE = Path(__file__).resolve().parent / "hostile" / "cases.json"


def fullwidth(ascii_text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def memory(
    content: str = "the release train leaves on thursdays",
    *,
    kind: str = "fact",
    tags: tuple[str, ...] = (),
    agent: str = "alice",
) -> MemoryState:
    return MemoryState(
        id=MID,
        content=content,
        kind=kind,
        tags=tuple(sorted(tags)),
        importance=0.5,
        recall_count=0,
        agent=agent,
        instance="one",
        private=False,
        created_at="2024-05-01T12:00:00+00:00",
    )


def event(cls: type[MemoryEvent], agent: str = "alice") -> MemoryEvent:
    return cls(
        swarm=SWARM,
        agent=agent,
        instance="one",
        actor=new_actor(SWARM, agent, "one").hex(),
        memory_id=MID,
        change=b"",
    )


def remember(state: MemoryState) -> Proposal:
    return Proposal(event(MemoryRemembered, state.agent), None, state)


def update(before: MemoryState, by: str, **changes: object) -> Proposal:
    return Proposal(event(MemoryUpdated, by), before, replace(before, **changes))  # type: ignore[arg-type]


def forget(before: MemoryState, by: str) -> Proposal:
    return Proposal(event(MemoryForgotten, by), before, replace(before, forgotten=True))


def reinforce(before: MemoryState, by: str) -> Proposal:
    return Proposal(event(MemoryReinforced, by), before, replace(before, recall_count=1))


def law(text: str) -> Law:
    (spec,) = parse_laws(f"laws: [{text}]")
    return build(spec)


def outcome(text: str, proposal: Proposal) -> Outcome:
    return law(text).check(proposal)


# -- private_data ---------------------------------------------------------------------------------


def test_private_data_watches_every_detector_kind_by_default() -> None:
    built = law("{id: p, kind: private_data}")
    assert isinstance(built, PrivateDataLaw)
    assert built.params() == {"kinds": sorted(detectors.KINDS)}
    verdict = built.check(remember(memory("write to bob@example.com")))
    assert not verdict.ok
    assert verdict.reason is not None
    assert "bob@" not in verdict.reason + (verdict.where or "")


def test_private_data_limited_to_some_kinds_passes_the_others() -> None:
    text = "{id: p, kind: private_data, params: {kinds: [card]}}"
    assert outcome(text, remember(memory("write to bob@example.com"))).ok
    assert not outcome(text, remember(memory("paid with 4111 1111 1111 1111"))).ok


def test_private_data_rejects_every_hostile_case_with_a_secret() -> None:
    laws = build_law_set(load_soul(EXAMPLES / "SOUL.md"), allow_approval=True)
    cases = [c for c in json.loads(HOSTILE.read_text(encoding="utf-8")) if c["expect"]]
    assert cases
    for case in cases:
        proposal = remember(memory(case["text"], agent="planner"))
        assert laws.judge(proposal).decision == "reject", case["id"]


# -- max_content ----------------------------------------------------------------------------------


def test_max_content_rejects_longer_content_and_says_by_how_much() -> None:
    text = "{id: m, kind: max_content, params: {chars: 10}}"
    assert outcome(text, remember(memory("x" * 10))).ok
    verdict = outcome(text, remember(memory("x" * 11)))
    assert not verdict.ok
    assert verdict.reason == "content is 11 characters; this law allows 10"


def test_max_content_lets_an_old_long_memory_be_recalled_and_forgotten() -> None:
    text = "{id: m, kind: max_content, params: {chars: 10}}"
    old = memory("x" * 50)
    assert outcome(text, reinforce(old, "alice")).ok
    assert outcome(text, forget(old, "alice")).ok
    assert not outcome(text, update(old, "alice", content="y" * 50)).ok


# -- deny_tags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["secret", "SECRET", " Secret ", fullwidth("SECRET"), "se\u200bcret"]
)
def test_deny_tags_rejects_a_denied_tag_however_it_is_written(tag: str) -> None:
    verdict = outcome(
        "{id: t, kind: deny_tags, params: {tags: [Secret]}}", remember(memory(tags=(tag,)))
    )
    assert not verdict.ok
    assert verdict.reason == "tag 'secret' is not allowed"
    assert verdict.where == "tags"


def test_deny_tags_judges_only_tags_the_change_adds() -> None:
    text = "{id: t, kind: deny_tags, params: {tags: [draft]}}"
    tagged = memory(tags=("draft",))
    assert outcome(text, remember(memory(tags=("release",)))).ok
    assert outcome(text, update(tagged, "alice", content="now final")).ok
    assert outcome(text, forget(tagged, "alice")).ok
    assert not outcome(text, update(memory(), "alice", tags=("draft",))).ok


# -- kind_allowed ---------------------------------------------------------------------------------


def test_kind_allowed_rejects_other_kinds_when_the_kind_is_set() -> None:
    text = "{id: k, kind: kind_allowed, params: {kinds: [fact, source]}}"
    assert outcome(text, remember(memory(kind="source"))).ok
    verdict = outcome(text, remember(memory(kind="rumour")))
    assert not verdict.ok
    assert verdict.reason == "kind 'rumour' is not allowed (allowed: fact, source)"
    old = memory(kind="rumour")
    assert outcome(text, update(old, "alice", content="still a rumour")).ok
    assert not outcome(text, update(memory(), "alice", kind="rumour")).ok


# -- destructive and contradiction ----------------------------------------------------------------


def test_destructive_is_violated_by_forgetting_another_agents_memory_only() -> None:
    text = "{id: d, kind: destructive}"
    mine = memory(agent="alice")
    verdict = outcome(text, forget(mine, "bob"))
    assert not verdict.ok
    assert verdict.reason == "bob forgets a memory written by alice"
    assert outcome(text, forget(mine, "alice")).ok
    assert outcome(text, update(mine, "bob", content="changed")).ok
    assert outcome(text, remember(memory(agent="bob"))).ok


def test_contradiction_is_violated_by_rewriting_another_agents_content_only() -> None:
    text = "{id: c, kind: contradiction}"
    mine = memory(agent="alice")
    verdict = outcome(text, update(mine, "bob", content="the train leaves on fridays"))
    assert not verdict.ok
    assert verdict.reason is not None
    assert "bob changes the content of a memory written by alice" in verdict.reason
    assert "fridays" not in verdict.reason
    assert outcome(text, update(mine, "alice", content="fridays now")).ok
    assert outcome(text, update(mine, "bob", tags=("ops",))).ok
    assert outcome(text, forget(mine, "bob")).ok
    assert outcome(text, reinforce(mine, "bob")).ok


# -- scope ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountingLaw:
    id: str = "count"
    description: str = "always violated"
    action: Action = "flag"
    calls: list[str] = field(default_factory=list, compare=False, hash=False)

    def check(self, proposal: Proposal) -> Outcome:
        self.calls.append(proposal.event.agent)
        return Outcome(ok=False, reason="counted")

    def params(self) -> dict[str, object]:
        return {}


def test_a_law_scoped_to_agents_passes_other_agents_without_running() -> None:
    inner = CountingLaw()
    scoped = Scoped(inner, agents=frozenset({"alice"}))
    assert scoped.check(remember(memory(agent="bob"))).ok
    assert not scoped.check(remember(memory(agent="alice"))).ok
    assert inner.calls == ["alice"]


def test_a_law_scoped_to_kinds_follows_a_memory_whose_kind_changes() -> None:
    inner = CountingLaw()
    scoped = Scoped(inner, kinds=frozenset({"decision"}))
    assert scoped.check(remember(memory(kind="fact"))).ok
    assert not scoped.check(remember(memory(kind="decision"))).ok
    assert not scoped.check(update(memory(kind="decision"), "alice", kind="fact")).ok
    assert inner.calls == ["alice", "alice"]


def test_a_scoped_spec_builds_a_scoped_law_with_the_spec_identity() -> None:
    built = law("{id: s, kind: max_content, params: {chars: 3}, scope: {agents: [a], kinds: [x]}}")
    assert isinstance(built, Scoped)
    assert (built.id, built.action, built.kind) == ("s", "reject", "max_content")
    assert built.params() == {"chars": 3, "scope": {"agents": ["a"], "kinds": ["x"]}}


def test_soul_laws_bind_their_agent_only() -> None:
    laws = build_law_set(load_soul(EXAMPLES / "SOUL.md"), allow_approval=True)
    leak = "mail bob@example.com"
    assert laws.judge(trial_proposal(leak, agent="planner")).decision == "reject"
    assert laws.judge(trial_proposal(leak, agent="researcher")).decision == "accept"


# -- judging require_approval ---------------------------------------------------------------------


def judge_set(*texts: str) -> LawSet:
    return build_law_set(parse_laws("laws: [" + ", ".join(texts) + "]"), allow_approval=True)


def test_a_require_approval_violation_is_pending_not_a_result() -> None:
    laws = judge_set("{id: ask, kind: destructive}", "{id: c, kind: contradiction}")
    judgement = laws.judge(forget(memory(agent="alice"), "bob"))
    assert judgement.decision == "pending"
    assert judgement.violation is None
    assert judgement.pending == (
        Pending(law="ask", reason="bob forgets a memory written by alice", where="forgotten"),
    )
    assert judgement.results == (LawResult(law="c", verdict="pass"),)


def test_a_passed_require_approval_law_is_a_plain_pass() -> None:
    laws = judge_set("{id: ask, kind: destructive}")
    judgement = laws.judge(forget(memory(agent="alice"), "alice"))
    assert judgement.decision == "accept"
    assert judgement.results == (LawResult(law="ask", verdict="pass"),)
    assert judgement.pending == ()


def test_pending_does_not_stop_a_later_rejection() -> None:
    laws = judge_set(
        "{id: ask, kind: destructive}",
        "{id: no-pii, kind: private_data}",
        "{id: never, kind: contradiction}",
    )
    leaking = replace(memory(agent="alice"), forgotten_reason="ask bob@example.com")
    proposal = Proposal(
        event(MemoryForgotten, "bob"), memory(agent="alice"), replace(leaking, forgotten=True)
    )
    judgement = laws.judge(proposal)
    assert judgement.decision == "reject"
    assert judgement.violation is not None
    assert judgement.violation[0].id == "no-pii"
    assert [p.law for p in judgement.pending] == ["ask"]
    assert [r.law for r in judgement.results] == ["no-pii"]


def test_decision_ranks_reject_then_pending_then_flag_then_accept() -> None:
    laws = judge_set(
        "{id: c, kind: contradiction}",
        "{id: ask, kind: destructive, action: require_approval}",
        "{id: m, kind: max_content, params: {chars: 5}}",
    )
    alice = memory("short", agent="alice")
    assert laws.judge(update(alice, "alice", content="brief")).decision == "accept"
    assert laws.judge(update(alice, "bob", content="brief")).decision == "flag"
    assert laws.judge(forget(alice, "bob")).decision == "pending"
    assert laws.judge(update(alice, "bob", content="too long")).decision == "reject"


def test_reject_and_flag_judge_exactly_as_before() -> None:
    laws = judge_set(
        "{id: c, kind: contradiction}", "{id: m, kind: max_content, params: {chars: 5}}"
    )
    judgement = laws.judge(update(memory("short", agent="alice"), "bob", content="too long"))
    assert judgement.results[0].verdict == "flag"
    assert judgement.results[1] == LawResult(
        law="m", verdict="reject", reason="content is 8 characters; this law allows 5"
    )
    assert judgement.violation is not None
    assert judgement.pending == ()


def test_default_laws_are_unchanged() -> None:
    assert default_laws().version == LawSet([PrivateDataLaw()]).version
    assert [law.id for law in default_laws().laws] == ["no-private-data"]


# -- hostile input --------------------------------------------------------------------------------

_DRAFT = repr(fullwidth("DRAFT"))
_ALL_KINDS = judge_set(
    "{id: pii, kind: private_data, action: flag}",
    "{id: long, kind: max_content, params: {chars: 40}, action: flag}",
    "{id: tags, kind: deny_tags, params: {tags: [secret, " + _DRAFT + ", ' x ']}, action: flag}",
    "{id: kinds, kind: kind_allowed, params: {kinds: [fact]}, action: flag}",
    "{id: ask, kind: destructive}",
    "{id: contra, kind: contradiction}",
    "{id: scoped, kind: private_data, scope: {agents: [alice], kinds: [fact, decision]}}",
    "Never expose private data",
)
_EXAMPLE = build_law_set(load_laws(EXAMPLES / "laws.yaml"), allow_approval=True)
_NAMES = st.from_regex(NAME_PATTERN.replace("{0,63}", "{0,8}"), fullmatch=True)
_TEXT = st.text(max_size=200)


@st.composite
def hostile_proposals(draw: st.DrawFn) -> Proposal:
    owner, writer = draw(_NAMES), draw(_NAMES)
    before = MemoryState(
        id=MID,
        content=draw(_TEXT),
        kind=draw(st.text(max_size=40)),
        tags=tuple(draw(st.lists(st.text(max_size=30), max_size=6))),
        importance=0.5,
        recall_count=0,
        agent=owner,
        instance="one",
        private=draw(st.booleans()),
        created_at="2024-05-01T12:00:00+00:00",
    )
    after = replace(
        before,
        content=draw(st.one_of(st.just(before.content), _TEXT)),
        kind=draw(st.one_of(st.just(before.kind), st.text(max_size=40))),
        tags=tuple(draw(st.lists(st.text(max_size=30), max_size=6))),
        forgotten=draw(st.booleans()),
        forgotten_reason=draw(st.one_of(st.none(), _TEXT)),
    )
    cls = draw(
        st.sampled_from([MemoryRemembered, MemoryUpdated, MemoryReinforced, MemoryForgotten])
    )
    first = cls is MemoryRemembered or draw(st.booleans())
    return Proposal(event(cls, writer), None if first else before, after)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_proposals())
def test_laws_never_raise_on_arbitrary_text_tags_and_kinds(proposal: Proposal) -> None:
    judgement = _ALL_KINDS.judge(proposal)
    assert judgement.decision in ("accept", "reject", "pending", "flag")
    verdicts = {r.verdict for r in judgement.results}
    assert verdicts <= {"pass", "flag", "reject"}
    ran = [r.law for r in judgement.results] + [p.law for p in judgement.pending]
    assert len(ran) == len(set(ran))
    for reason in [r.reason for r in judgement.results] + [p.reason for p in judgement.pending]:
        assert reason is None or isinstance(reason, str)


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, tags=st.lists(st.text(max_size=30), max_size=6), kind=st.text(max_size=40))
def test_the_default_and_example_laws_never_raise_on_a_new_memory(
    text: str, tags: list[str], kind: str
) -> None:
    for laws in (default_laws(), _EXAMPLE):
        proposal = remember(memory(text, kind=kind, tags=tuple(tags), agent="researcher"))
        assert laws.judge(proposal).decision in ("accept", "reject", "pending", "flag")


def test_a_spec_built_law_set_gives_each_law_its_verdict() -> None:
    spec = LawSpec.model_validate({"id": "x", "kind": "contradiction"})
    (result,) = build_law_set([spec]).judge(remember(memory())).results
    assert result == LawResult(law="x", verdict="pass")
