"""Readable diffs between versions of a memory."""

from __future__ import annotations

from typing import Any

import pytest

from swarm.diff import annotate, changes, line_diff, summary, word_diff

STATE: dict[str, Any] = {
    "id": "m1",
    "content": "The staging database moves to eu-west-2 on Friday at 18:00 UTC",
    "kind": "fact",
    "tags": ["database", "ops"],
    "importance": 0.8,
    "recall_count": 0,
    "agent": "brad",
    "instance": "cloud",
    "private": False,
    "created_at": "2026-11-21T01:15:39+00:00",
    "forgotten": False,
    "forgotten_reason": None,
}


@pytest.mark.parametrize(
    ("before", "after", "diff"),
    [
        (
            "The staging database moves to eu-west-2 on Friday at 18:00 UTC",
            "The staging database moves to eu-west-2 on Saturday at 09:00 UTC",
            "The staging database moves to eu-west-2 on [-Friday-]{+Saturday+} at "
            "[-18:00-]{+09:00+} UTC",
        ),
        ("a b c", "a b c d", "a b c {+d+}"),
        ("a b c d", "a b c", "a b c [-d-]"),
        ("one two", "one three four two", "one {+three four+} two"),
        ("hello", "world", "[-hello-]{+world+}"),
    ],
)
def test_word_diff_marks_removed_and_added_words(before: str, after: str, diff: str) -> None:
    assert word_diff(before, after) == diff


def test_word_diff_elides_long_unchanged_stretches() -> None:
    words = [f"w{i}" for i in range(30)]
    changed = [*words[:15], "NEW", *words[16:]]
    diff = word_diff(" ".join(words), " ".join(changed))
    assert diff == "… w11 w12 w13 w14 [-w15-]{+NEW+} w16 w17 w18 w19 …"


def test_line_diff_shows_changed_lines_with_one_line_of_context() -> None:
    before = "\n".join(f"line {i}" for i in range(1, 9))
    after = before.replace("line 4", "line four") + "\nline 9"
    assert line_diff(before, after).splitlines() == [
        "…",
        "  line 3",
        "- line 4",
        "+ line four",
        "  line 5",
        "…",
        "  line 8",
        "+ line 9",
    ]
    assert line_diff("same\ntext", "same\ntext") == ""


def test_changes_of_a_new_memory_say_created() -> None:
    assert changes(None, STATE) == {"created": True}


def test_changes_keep_only_what_differs() -> None:
    after = STATE | {
        "content": STATE["content"].replace("Friday", "Saturday"),
        "tags": ["database", "migration"],
        "importance": 0.9,
    }
    assert changes(STATE, after) == {
        "content": {
            "style": "word",
            "diff": "The staging database moves to eu-west-2 on [-Friday-]{+Saturday+} at "
            "18:00 UTC",
        },
        "tags": {"added": ["migration"], "removed": ["ops"]},
        "importance": {"from": 0.8, "to": 0.9},
    }
    assert changes(STATE, STATE | {"recall_count": 1}) == {"recall_count": {"from": 0, "to": 1}}
    assert changes(STATE, dict(STATE)) == {}


def test_multi_line_content_gets_a_line_diff() -> None:
    before = STATE | {"content": "step one\nstep two\nstep three"}
    after = STATE | {"content": "step one\nstep 2\nstep three"}
    assert changes(before, after)["content"] == {
        "style": "line",
        "diff": "  step one\n- step two\n+ step 2\n  step three",
    }


def test_forgetting_names_the_reason_not_a_content_diff() -> None:
    after = STATE | {"forgotten": True, "forgotten_reason": "moved to the runbook"}
    assert changes(STATE, after) == {"forgotten": {"reason": "moved to the runbook"}}
    assert summary(changes(STATE, after), after) == ["forgotten: moved to the runbook"]


def test_summary_reads_as_lines_for_people() -> None:
    after = STATE | {"tags": ["database", "migration"], "importance": 0.9, "recall_count": 2}
    assert summary(changes(STATE, after), after) == [
        "tags: +migration -ops",
        "importance: 0.8 -> 0.9",
        "recalled: 0 -> 2",
    ]
    assert summary(changes(None, STATE), STATE) == [
        f"+ {STATE['content']}",
        "kind: fact   tags: database, ops   importance: 0.8",
    ]
    assert summary({}, STATE) == ["(no visible change)"]


def test_annotate_adds_author_and_changes_and_keeps_every_field() -> None:
    versions = [
        {"memory_id": "m1", "seq": 1, "event_id": "e1", "type": "memory.remembered",
         "agent": "brad", "instance": "cloud", "at": "t1", "state": STATE},
        {"memory_id": "m1", "seq": 3, "event_id": "e3", "type": "memory.reinforced",
         "agent": "ann", "instance": "desk", "at": "t3", "state": STATE | {"recall_count": 1}},
    ]  # fmt: skip
    out = annotate(versions)
    for old, new in zip(versions, out, strict=True):
        assert {k: new[k] for k in old} == old  # the JSON shape only grows
    assert [v["author"] for v in out] == ["brad@cloud", "ann@desk"]
    assert [v["changes"] for v in out] == [
        {"created": True},
        {"recall_count": {"from": 0, "to": 1}},
    ]
