"""Bundles: memory rows to files and back, readable Markdown, safe names, idempotent import."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from swarm.bundle import (
    BUNDLE_VERSION,
    Bundle,
    MemoryRecord,
    md_escape,
    read_bundle,
    render_soul,
    topic_files,
    write_bundle,
)
from swarm.errors import ConfigError
from swarm.laws.spec import parse_soul
from tests.unit.test_purity import forbidden_in, loaded_modules


def row(n: int, content: str = "", **fields: Any) -> dict[str, Any]:
    """A memory row as the `memories` read returns it."""
    base: dict[str, Any] = {
        "id": f"01M7XTRQ3JABS0W5SJ5VASN{n:03d}",
        "content": content or f"memory number {n}",
        "kind": "fact",
        "tags": ["ops"],
        "importance": 0.5,
        "recall_count": 0,
        "agent": "brad",
        "instance": "cloud",
        "private": False,
        "forgotten": False,
        "forgotten_reason": None,
        "created_at": f"2026-11-2{n % 10}T01:15:39.506428+00:00",
        "updated_at": f"2026-11-2{n % 10}T01:15:40.816486+00:00",
        "updated_by": "brad@cloud",
        "seq": n,
        "version": 1,
    }
    return {**base, **fields}


ROWS = [
    row(1, "Nightly backups run at 03:00", tags=["db", "ops"], importance=0.8, recall_count=3),
    row(2, "Deploys need two approvals", kind="procedure", tags=[]),
    row(3, "Draft: move staging to Postgres 17", private=True, tags=["ops"]),
    row(4, "Old VPN endpoint", forgotten=True, forgotten_reason="moved to the runbook"),
]


def bundle_of(rows: Sequence[dict[str, Any]] = ROWS, **about: Any) -> Bundle:
    return Bundle.of(
        "brad", rows, swarm="default", exported_at="2026-11-21T02:00:00+00:00", **about
    )


# -- writing and reading ------------------------------------------------------------------------


def test_a_bundle_written_then_read_gives_back_every_memory_exactly(tmp_path: Path) -> None:
    bundle = bundle_of()
    write_bundle(tmp_path, bundle, soul=render_soul("brad"))
    again = read_bundle(tmp_path)
    assert again == bundle
    assert again.memories[0].model_dump(mode="json") == {
        k: v for k, v in ROWS[0].items() if k != "version"
    }


def test_the_bundle_holds_soul_index_topics_manifest_and_records(tmp_path: Path) -> None:
    files = write_bundle(tmp_path, bundle_of(), soul="---\nname: brad\n---\n")
    names = {f.as_posix() for f in files}
    assert {"SOUL.md", "MEMORY.md", "bundle.json", "memories.jsonl"} <= names
    assert {n for n in names if n.startswith("memory/")} == {
        f"memory/{name}" for name in topic_files(bundle_of().memories).values()
    }
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    assert manifest["format"] == "swarm-memory-bundle"
    assert manifest["version"] == BUNDLE_VERSION
    assert (manifest["agent"], manifest["memories"], manifest["topics"]) == ("brad", 4, 3)
    assert len((tmp_path / "memories.jsonl").read_text().splitlines()) == 4
    assert (tmp_path / "SOUL.md").read_text() == "---\nname: brad\n---\n"


def test_the_soul_given_as_bytes_is_written_unchanged(tmp_path: Path) -> None:
    soul = b"---\r\nname: Planner\r\n---\r\n\xe2\x9c\x93 unchanged\r\n"
    write_bundle(tmp_path, bundle_of(), soul=soul)
    assert (tmp_path / "SOUL.md").read_bytes() == soul


def test_a_memory_read_twice_keeps_its_latest_state() -> None:
    rows = [row(1, "first"), row(2), row(1, "second", seq=9)]
    bundle = bundle_of(rows)
    assert [(m.id[-3:], m.content) for m in bundle.memories] == [
        ("002", "memory number 2"),
        ("001", "second"),
    ]


def test_the_index_links_each_topic_file_newest_topic_first(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    index = (tmp_path / "MEMORY.md").read_text()
    links = re.findall(r"^- \[(.+?)\]\((memory/[^)]+)\) \((\d) memor", index, re.M)
    assert [(title, int(n)) for title, _, n in links] == [
        ("fact · ops", 2),
        ("procedure", 1),
        ("fact · db", 1),
    ]
    for _, target, _ in links:
        assert (tmp_path / target).is_file()
    assert "4 memories of agent `brad` of swarm `default`" in index


def test_a_topic_file_shows_each_memory_with_its_metadata_newest_first(tmp_path: Path) -> None:
    rows = [row(1, "older", recall_count=1), row(2, "newer", importance=0.9, recall_count=2)]
    write_bundle(tmp_path, bundle_of(rows), soul="")
    (topic,) = (tmp_path / "memory").glob("*.md")
    text = topic.read_text()
    assert text.index("> newer") < text.index("> older")
    assert "importance 0.9 · recalled 2 times" in text
    assert "recalled 1 time " in text or "recalled 1 time\n" in text
    assert "written by brad@cloud on 2026-11-21 01:15 UTC" in text
    assert "- tags: ops" in text


def test_private_and_forgotten_memories_are_marked(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    text = "".join(p.read_text() for p in (tmp_path / "memory").glob("*.md"))
    assert "· private" in text
    assert "- forgotten: moved to the runbook" in text


def test_writing_again_replaces_the_old_topic_files(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    write_bundle(tmp_path, bundle_of([row(1, kind="episode", tags=[])]), soul="")
    assert [p.name for p in (tmp_path / "memory").glob("*.md")] == ["episode.md"]


def test_writing_into_a_directory_that_holds_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no bundle"):
        write_bundle(tmp_path, bundle_of(), soul="")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# -- reading what is not a good bundle ----------------------------------------------------------


def test_a_directory_without_a_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds no bundle \(no bundle.json\)"):
        read_bundle(tmp_path)


def test_a_bundle_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    (tmp_path / "bundle.json").write_text(json.dumps({**manifest, "version": BUNDLE_VERSION + 1}))
    with pytest.raises(ConfigError, match="bundle version 2; this Swarm Memory reads version 1"):
        read_bundle(tmp_path)


def test_a_broken_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    path = tmp_path / "memories.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "id": "bad id!"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"memories.jsonl:3: not a memory: id"):
        read_bundle(tmp_path)


def test_a_truncated_bundle_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path, bundle_of(), soul="")
    path = tmp_path / "memories.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(ConfigError, match=r"2 memories, but bundle\.json says 4"):
        read_bundle(tmp_path)


# -- Markdown escaping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("# not a heading", r"\# not a heading"),
        ("- not a list", r"\- not a list"),
        ("+ nor this", r"\+ nor this"),
        ("1. not numbered", r"1\. not numbered"),
        ("2) either", r"2\) either"),
        ("> not a quote", r"\> not a quote"),
        ("---", r"\---"),
        ("*not emphasis* or __bold__", r"\*not emphasis\* or \_\_bold\_\_"),
        ("[a link](http://x)", r"\[a link\](http://x)"),
        ("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
        ("```python", r"\`\`\`python"),
        ("a | table | row", r"a \| table \| row"),
        ("&amp; stays literal", r"\&amp; stays literal"),
        ("back\\slash", r"back\\slash"),
        ("    indented code", "indented code"),
        ("plain words, 3.5 and 42", "plain words, 3.5 and 42"),
    ],
)
def test_markdown_in_content_is_escaped_to_literal_text(text: str, escaped: str) -> None:
    assert md_escape(text) == escaped


def test_content_cannot_break_out_of_its_quote(tmp_path: Path) -> None:
    hostile = "line one\n\n## Injected heading\n---\n- [x](y)"
    write_bundle(tmp_path, bundle_of([row(1, hostile)]), soul="")
    (topic,) = (tmp_path / "memory").glob("*.md")
    headings = [line for line in topic.read_text().splitlines() if line.startswith("#")]
    assert len(headings) == 2  # the topic's title and the memory's own heading
    assert "> \\## Injected heading" in topic.read_text()
    index = (tmp_path / "MEMORY.md").read_text()
    assert "Injected" in index
    assert len(re.findall(r"(?<!\\)\]\(", index)) == 1  # only the topic link


# -- topic file names ---------------------------------------------------------------------------

HOSTILE_TAGS = [
    "../../etc/passwd",
    'a/b\\c:d*e?f"g<h>i|j',
    "CON",
    "con",
    "nul",
    "Ops",
    "ops",
    "日本語",
    "リリース",
    "x" * 64,
    "x" * 63 + "y",
    " spaced out ",
    "trailing.",
    "emoji 🚀",
]
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.md$")
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def test_topic_file_names_are_safe_on_every_os_and_unique_ignoring_case() -> None:
    memories = [
        MemoryRecord.model_validate(row(i, tags=[tag])) for i, tag in enumerate(HOSTILE_TAGS)
    ]
    memories += [
        MemoryRecord.model_validate(row(90, kind="con", tags=[])),
        MemoryRecord.model_validate(row(91, kind="fact", tags=[])),
    ]
    names = list(topic_files(memories).values())
    assert len(names) == len(HOSTILE_TAGS) + 2
    for name in names:
        assert SAFE_NAME.match(name), name
        assert name.removesuffix(".md") not in WINDOWS_RESERVED
    assert len({n.casefold() for n in names}) == len(names)


def test_topic_file_names_do_not_depend_on_the_other_topics() -> None:
    one = MemoryRecord.model_validate(row(1, tags=["日本語"]))
    other = MemoryRecord.model_validate(row(2, tags=["リリース"]))
    assert topic_files([one])[one.topic] == topic_files([one, other])[one.topic]


def test_hostile_tags_write_files_only_inside_the_bundle(tmp_path: Path) -> None:
    rows = [row(i, tags=[tag]) for i, tag in enumerate(HOSTILE_TAGS)]
    write_bundle(tmp_path / "b", bundle_of(rows), soul="")
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.parts[0] == "b" for p in written)
    assert len([p for p in written if p.parts[1] == "memory"]) == len(HOSTILE_TAGS)


# -- SOUL.md ------------------------------------------------------------------------------------

LAWS = {
    "law_set": "3:abc",
    "laws": [
        {
            "id": "no-private-data",
            "description": "Never expose private data",
            "kind": "private_data",
            "params": {"kinds": ["email"]},
            "action": "reject",
            "scope": {"agents": None, "kinds": None},
        },
        {
            "id": "brad-no-drafts",
            "kind": "deny_tags",
            "params": {"tags": ["draft"]},
            "action": "reject",
            "scope": {"agents": ["brad"], "kinds": ["fact"]},
        },
        {
            "id": "ann-only",
            "kind": "deny_tags",
            "params": {"tags": ["x"]},
            "action": "reject",
            "scope": {"agents": ["ann"], "kinds": None},
        },
        {"id": "no-shouting", "description": "Flag capitals", "action": "flag"},
    ],
}


def test_the_written_soul_declares_the_laws_in_force_for_the_agent() -> None:
    text = render_soul("brad", LAWS, swarm="default", exported_at="2026-11-21T02:00:00+00:00")
    specs = parse_soul(text, "SOUL.md")
    assert [s.id for s in specs] == ["no-private-data", "brad-no-drafts"]
    assert all(s.scope.agents == ("brad",) for s in specs)
    assert specs[1].scope.kinds == ("fact",)
    assert specs[0].params == {"kinds": ["email"]}
    assert "`no-shouting`: Flag capitals" in text  # a law set in code: named in the text
    assert "law set `3:abc`" in text


def test_a_soul_without_laws_is_still_a_valid_soul() -> None:
    text = render_soul("brad")
    assert text.startswith("---\nname: brad\nagent: brad\n")
    assert "personality:" in text and "principles:" in text
    assert parse_soul(text) == []


def test_the_bundle_module_loads_no_io_stack() -> None:
    assert forbidden_in(loaded_modules("swarm.bundle")) == []
