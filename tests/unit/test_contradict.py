"""The lexical contradiction heuristic, and the contradiction law reading related memories."""

from __future__ import annotations

import pytest

from swarm.laws import LawSpec, build, trial_proposal
from swarm.laws.base import Proposal, Related
from swarm.laws.contradict import conflict, content_terms

CONFLICTS = [
    ("The deploy key rotates on Mondays", "The deploy key rotates on Fridays", "value"),
    ("Standup is at 9:30", "Standup is at 10:00", "value"),
    ("Lunch is at noon", "Lunch is at 13:00", "value"),
    ("The staging DB runs postgres 15", "The staging DB runs mysql 8", "value"),
    (
        "The staging cluster is shared with QA",
        "The staging cluster is not shared with QA",
        "polarity",
    ),
    (
        "The staging cluster isn't shared with QA",
        "The staging cluster is shared with QA",
        "polarity",
    ),
    ("The cluster isn\u2019t shared with QA", "The cluster is shared with QA", "polarity"),
    ("We never deploy on Fridays", "We deploy on Fridays", "polarity"),
]

AGREE_OR_UNRELATED = [
    ("The deploy key rotates on Mondays", "The deploy key rotates on Mondays"),
    ("The deploy key rotates on Mondays", "The deploy key rotates on Mondays at noon"),
    ("Standup is at 9:30", "Standup is at 9:30 today"),
    ("Backups run nightly at 02:00", "Backups run nightly at 02:00 UTC to S3"),
    ("Lunch is at noon", "The deploy key rotates on Mondays"),
    ("The office is closed on Friday", "Friday team lunch at the office"),
    ("The cluster is not shared", "The cluster is never shared"),
    ("", "anything"),
]


@pytest.mark.parametrize(("new", "old", "why"), CONFLICTS)
def test_conflicts_are_found_both_ways(new: str, old: str, why: str) -> None:
    for a, b in ((new, old), (old, new)):
        found = conflict(a, b)
        assert found is not None and why in found, (a, b, found)


@pytest.mark.parametrize(("new", "old"), AGREE_OR_UNRELATED)
def test_agreement_and_other_subjects_are_not_conflicts(new: str, old: str) -> None:
    assert conflict(new, old) is None
    assert conflict(old, new) is None


def test_content_terms_drop_stop_words_and_count_negations() -> None:
    terms, negated = content_terms("The cache is NOT shared with the team")
    assert terms == {"cache", "shared", "team"}
    assert negated is True
    assert content_terms("it is not, not shared")[1] is False  # a double negation


LAW = build(LawSpec.model_validate({"id": "escalate", "kind": "contradiction"}))


def with_related(proposal: Proposal, *related: Related) -> Proposal:
    return Proposal(proposal.event, proposal.before, proposal.after, related=related)


def test_the_law_needs_related_memories_and_flags_by_default() -> None:
    assert LAW.action == "flag"
    assert getattr(LAW, "needs_related", False) is True


def test_a_new_memory_contradicting_another_agents_is_flagged_naming_it() -> None:
    proposal = with_related(
        trial_proposal("The deploy key rotates on Fridays", agent="bob"),
        Related(
            id="01OTHERMEMORY000000000000",
            agent="alice",
            content="The deploy key rotates on Mondays",
        ),
    )
    outcome = LAW.check(proposal)
    assert not outcome.ok
    assert outcome.reason is not None
    assert "01OTHERMEMORY000000000000" in outcome.reason and "alice" in outcome.reason
    assert "Mondays" not in outcome.reason and "Fridays" not in outcome.reason


def test_own_memories_and_agreeing_ones_pass() -> None:
    proposal = with_related(
        trial_proposal("The deploy key rotates on Fridays", agent="bob"),
        Related(
            id="01MINE0000000000000000000", agent="bob", content="The deploy key rotates on Mondays"
        ),
        Related(
            id="01OTHER000000000000000000",
            agent="alice",
            content="The deploy key rotates on Fridays",
        ),
    )
    assert LAW.check(proposal).ok


def test_without_related_memories_only_a_rewrite_of_anothers_content_is_flagged() -> None:
    assert LAW.check(trial_proposal("anything new", agent="bob")).ok
    rewrite = trial_proposal("a new text", agent="bob", owner="alice", event="update")
    assert not LAW.check(rewrite).ok
