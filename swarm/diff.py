"""What one event changed in a memory: a readable diff of two versions. Pure.

:func:`changes` compares the state before an event with the state after it and
keeps only what differs::

    {"content": {"style": "word", "diff": "moves on [-Friday-]{+Saturday+} at …"},
     "tags": {"added": ["db"], "removed": ["ops"]},
     "importance": {"from": 0.5, "to": 0.8},
     "recall_count": {"from": 0, "to": 1},
     "forgotten": {"reason": "moved to the runbook"}}

Content diffs use git's plain word-diff notation (``[-removed-]{+added+}``) with
a few words of context around each change, or, for text of several lines, a
line diff (``- old`` / ``+ new`` lines with one line of context). :func:`annotate`
adds ``author`` and ``changes`` to each version of a history.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["annotate", "changes", "line_diff", "summary", "word_diff"]

#: Unchanged words kept on each side of a change; longer stretches become "…".
WORD_CONTEXT = 4
#: Unchanged lines kept on each side of a changed line.
LINE_CONTEXT = 1
ELIDED = "…"
_TOKEN = re.compile(r"\s+|[^\s]+")
_OTHER_FIELDS = ("kind", "private", "importance", "recall_count")


def _equal_words(tokens: Sequence[str], *, first: bool, last: bool) -> str:
    """An unchanged stretch, keeping WORD_CONTEXT words next to each change."""
    words = [i for i, t in enumerate(tokens) if not t.isspace()]
    if len(words) <= 2 * WORD_CONTEXT + (0 if first or last else 1):
        return "".join(tokens)
    head = "" if first else "".join(tokens[: words[WORD_CONTEXT - 1] + 1])
    tail = "" if last else "".join(tokens[words[-WORD_CONTEXT] :])
    if first:
        return ELIDED + " " + tail
    if last:
        return head + " " + ELIDED
    return head + " " + ELIDED + " " + tail


def word_diff(before: str, after: str) -> str:
    """A compact word diff: ``[-removed-]{+added+}`` with a little context."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    out: list[str] = []
    for n, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            out.append(_equal_words(a[i1:i2], first=n == 0, last=n == len(ops) - 1))
            continue
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        # Whitespace at the edges stays outside the markers: "c {+d+}", not "c{+ d+}".
        edge = removed if not added.strip() else added
        lead = edge[: len(edge) - len(edge.lstrip())]
        trail = edge[len(edge.rstrip()) :]
        marked = "".join(
            f"{open_}{text.strip()}{close}"
            for text, open_, close in ((removed, "[-", "-]"), (added, "{+", "+}"))
            if text.strip()
        )
        out.append(f"{lead}{marked}{trail}" if marked else edge)
    return "".join(out)


def line_diff(before: str, after: str) -> str:
    """A compact line diff: ``- old`` / ``+ new`` lines, one line of context, ``…`` between."""
    a, b = before.splitlines(), after.splitlines()
    out: list[str] = []
    end = 0  # lines of ``before`` shown or diffed so far
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(
        LINE_CONTEXT
    ):
        if group[0][1] > end:
            out.append(ELIDED)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(f"  {line}" for line in a[i1:i2])
                continue
            out.extend(f"- {line}" for line in a[i1:i2])
            out.extend(f"+ {line}" for line in b[j1:j2])
        end = group[-1][2]
    if out and end < len(a):
        out.append(ELIDED)
    return "\n".join(out)


def _content(before: str, after: str) -> dict[str, str]:
    style: Literal["word", "line"] = "line" if "\n" in before or "\n" in after else "word"
    diff = line_diff(before, after) if style == "line" else word_diff(before, after)
    return {"style": style, "diff": diff}


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """What differs from ``before`` (None: the memory is new) to ``after`` (states)."""
    if before is None:
        return {"created": True}
    out: dict[str, Any] = {}
    if before.get("content") != after.get("content") and not after.get("forgotten"):
        out["content"] = _content(str(before.get("content") or ""), str(after.get("content") or ""))
    old_tags, new_tags = list(before.get("tags") or []), list(after.get("tags") or [])
    added = [t for t in new_tags if t not in old_tags]
    removed = [t for t in old_tags if t not in new_tags]
    if added or removed:
        out["tags"] = {"added": added, "removed": removed}
    for key in _OTHER_FIELDS:
        if before.get(key) != after.get(key):
            out[key] = {"from": before.get(key), "to": after.get(key)}
    if after.get("forgotten") and not before.get("forgotten"):
        out["forgotten"] = {"reason": after.get("forgotten_reason")}
    return out


def summary(change: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    """The lines a person reads for one version: what changed (``state``: after it)."""
    if change.get("created"):
        tags = ", ".join(state.get("tags") or []) or "-"
        return [
            f"+ {state.get('content', '')}",
            f"kind: {state.get('kind')}   tags: {tags}   importance: {state.get('importance')}"
            + ("   (private)" if state.get("private") else ""),
        ]
    lines: list[str] = []
    if "content" in change:
        diff = change["content"]["diff"]
        if change["content"]["style"] == "line":
            lines += ["content:", *(f"  {line}" for line in diff.splitlines())]
        else:
            lines.append(f"content: {diff}")
    if "tags" in change:
        marks = [f"+{t}" for t in change["tags"]["added"]]
        marks += [f"-{t}" for t in change["tags"]["removed"]]
        lines.append("tags: " + " ".join(marks))
    for key, label in (("importance", "importance"), ("recall_count", "recalled")):
        if key in change:
            lines.append(f"{label}: {change[key]['from']} -> {change[key]['to']}")
    for key in ("kind", "private"):
        if key in change:
            lines.append(f"{key}: {change[key]['from']} -> {change[key]['to']}")
    if "forgotten" in change:
        reason = change["forgotten"]["reason"]
        lines.append("forgotten" + (f": {reason}" if reason else " (no reason given)"))
    return lines or ["(no visible change)"]


def annotate(versions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each version (oldest first) with ``author`` (agent@instance) and ``changes``."""
    out: list[dict[str, Any]] = []
    before: Mapping[str, Any] | None = None
    for version in versions:
        state = version["state"]
        out.append(
            {
                **version,
                "author": f"{version['agent']}@{version['instance']}",
                "changes": changes(before, state),
            }
        )
        before = state
    return out
