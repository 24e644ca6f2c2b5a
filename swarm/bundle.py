"""Bundles: an agent's memories as plain files, to carry them to another model or swarm.

A bundle is a directory::

    SOUL.md            the agent, Soul Spec style: name, personality, principles and the
                       laws in force for it (or the agent's own SOUL.md, unchanged)
    MEMORY.md          an index: one line per topic, newest first, linking its file
    memory/<topic>.md  the memories of one topic (kind and first tag), newest first
    bundle.json        format, version, agent, swarm, when and by whom, counts
    memories.jsonl     every memory with its metadata, one per line: what import reads

The Markdown files are for reading (by people, or by a model given MEMORY.md);
``memories.jsonl`` holds the exact values. Writing and reading a bundle are
plain functions of memory rows and files; :mod:`swarm.transfer` moves bundles
out of and into a swarm.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from swarm.errors import ConfigError
from swarm.events import Identifier

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "Bundle",
    "MemoryRecord",
    "md_escape",
    "read_bundle",
    "render_soul",
    "topic_files",
    "write_bundle",
]

BUNDLE_FORMAT = "swarm-memory-bundle"
BUNDLE_VERSION = 1
MANIFEST, RECORDS, INDEX, SOUL, TOPICS = (
    "bundle.json",
    "memories.jsonl",
    "MEMORY.md",
    "SOUL.md",
    "memory",
)


class MemoryRecord(BaseModel):
    """One memory of a bundle: its state when exported (a ``get`` row)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Identifier
    content: str
    kind: str = "fact"
    tags: tuple[str, ...] = ()
    importance: float = 0.5
    private: bool = False
    agent: str
    instance: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None
    recall_count: int = 0
    forgotten: bool = False
    forgotten_reason: str | None = None
    seq: int = 0

    @property
    def topic(self) -> tuple[str, str | None]:
        """What the memory is about, for grouping: its kind and first tag."""
        return self.kind, (self.tags[0] if self.tags else None)

    @property
    def newest(self) -> str:
        """Its last change (the sort key of "newest first")."""
        return self.updated_at or self.created_at or ""


@dataclass(frozen=True)
class Bundle:
    """An agent's memories and where they came from."""

    agent: str
    memories: tuple[MemoryRecord, ...]
    swarm: str | None = None
    exported_at: str | None = None
    exported_by: str | None = None
    include_forgotten: bool = False

    @classmethod
    def of(cls, agent: str, rows: Iterable[Mapping[str, Any]], **about: Any) -> Bundle:
        """A bundle of memory rows (as ``get`` returns them); a memory listed twice
        (it changed while being read) keeps its latest state. Log order."""
        latest: dict[str, MemoryRecord] = {}
        for row in rows:
            record = MemoryRecord.model_validate(row)
            held = latest.get(record.id)
            if held is None or record.seq >= held.seq:
                latest[record.id] = record
        ordered = sorted(latest.values(), key=lambda m: (m.seq, m.id))
        return cls(agent=agent, memories=tuple(ordered), **about)


# -- Markdown ---------------------------------------------------------------------------------

_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
_LINE_START = re.compile(r"^([#+=-])")
_ORDERED = re.compile(r"^(\d+)([.)])")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown: no emphasis, links, HTML, code, headings or lists.

    Each line is escaped on its own; leading indentation is dropped (it would
    start a code block). Backslash escapes of ASCII punctuation are CommonMark.
    """
    lines = []
    for raw in text.splitlines():
        line = _INLINE.sub(r"\\\1", raw.strip())
        line = _ORDERED.sub(r"\1\\\2", _LINE_START.sub(r"\\\1", line))
        lines.append(line)
    return "\n".join(lines)


def _inline(text: str, limit: int | None = None) -> str:
    """One escaped line (line breaks become spaces), at most ``limit`` characters of text."""
    flat = " ".join(text.split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return md_escape(flat)


def _when(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))]
)


def _slug(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")


def _topic_title(topic: tuple[str, str | None]) -> str:
    kind, tag = topic
    return kind if tag is None else f"{kind} · {tag}"


def _topic_name(topic: tuple[str, str | None]) -> str:
    """A file name (without ``.md``) safe on every OS: lower-case ASCII letters, digits
    and ``-``; never a reserved Windows name. When the slug loses something (case,
    other characters), a short hash of the topic keeps distinct topics apart."""
    kind, tag = topic
    raw = kind if tag is None else f"{kind}-{tag}"
    name = _slug(raw) or "topic"
    if name != raw:
        name += "-" + hashlib.sha256(f"{kind}\x00{tag or ''}".encode()).hexdigest()[:8]
    return name + "_" if name in _RESERVED else name


def topic_files(memories: Iterable[MemoryRecord]) -> dict[tuple[str, str | None], str]:
    """Each topic of ``memories`` -> its file name under ``memory/`` (unique, ignoring case)."""
    names: dict[tuple[str, str | None], str] = {}
    taken: set[str] = set()
    for topic in sorted({m.topic for m in memories}, key=lambda t: (t[0], t[1] or "")):
        base = name = _topic_name(topic)
        n = 2
        while name.casefold() in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name.casefold())
        names[topic] = f"{name}.md"
    return names


def _newest_first(memories: Iterable[MemoryRecord]) -> list[MemoryRecord]:
    return sorted(memories, key=lambda m: (m.newest, m.seq), reverse=True)


def _memory_md(m: MemoryRecord) -> str:
    created = _when(m.created_at)
    lines = [f"## {_when(m.newest)} · `{m.id}`", ""]
    lines += ["> " + line if line else ">" for line in md_escape(m.content).splitlines()]
    lines.append("")
    tags = ", ".join(_inline(t) for t in m.tags) or "none"
    recalled = f"recalled {m.recall_count} time{'s' if m.recall_count != 1 else ''}"
    flags = " · private" if m.private else ""
    lines.append(f"- tags: {tags}")
    lines.append(f"- kind: {_inline(m.kind)} · importance {m.importance:g} · {recalled}{flags}")
    who = f"{m.agent}@{m.instance}" if m.instance else m.agent
    by = _inline(m.updated_by or "?")
    change = f"; last changed {_when(m.updated_at)} by {by}" if m.updated_at else ""
    lines.append(f"- written by {_inline(who)} on {created}{change} (log seq {m.seq})")
    if m.forgotten:
        why = f": {_inline(m.forgotten_reason)}" if m.forgotten_reason else ""
        lines.append(f"- forgotten{why}")
    return "\n".join(lines)


def render_topic(
    topic: tuple[str, str | None], memories: Sequence[MemoryRecord], agent: str
) -> str:
    """A topic file: its memories, newest first."""
    count = f"{len(memories)} memor{'y' if len(memories) == 1 else 'ies'}"
    parts = [f"# {_inline(_topic_title(topic))}", f"{count} of {agent}, newest first."]
    parts += [_memory_md(m) for m in _newest_first(memories)]
    return "\n\n".join(parts) + "\n"


def render_index(bundle: Bundle, files: Mapping[tuple[str, str | None], str]) -> str:
    """MEMORY.md: one line per topic, the topic with the newest memory first."""
    groups = _groups(bundle.memories)
    order = sorted(groups, key=lambda t: (groups[t][0].newest, groups[t][0].seq), reverse=True)
    count = len(bundle.memories)
    origin = f" of swarm `{bundle.swarm}`" if bundle.swarm else ""
    when = f" on {_when(bundle.exported_at)}" if bundle.exported_at else ""
    lines = [
        f"# Memory of {bundle.agent}",
        "",
        f"{count} memor{'y' if count == 1 else 'ies'} of agent `{bundle.agent}`{origin}, "
        f"exported{when}, in {len(groups)} topic{'s' if len(groups) != 1 else ''}. "
        f"Each topic's file lists its memories newest first; `{RECORDS}` holds them "
        "exactly, for `swarm import`.",
        "",
    ]
    for topic in order:
        newest = groups[topic][0]
        n = len(groups[topic])
        lines.append(
            f"- [{_inline(_topic_title(topic))}]({TOPICS}/{files[topic]}) "
            f"({n} memor{'y' if n == 1 else 'ies'}, newest {_when(newest.newest)}): "
            f"{_inline(newest.content, 100)}"
        )
    return "\n".join(lines) + "\n"


def _groups(
    memories: Iterable[MemoryRecord],
) -> dict[tuple[str, str | None], list[MemoryRecord]]:
    groups: dict[tuple[str, str | None], list[MemoryRecord]] = {}
    for m in memories:
        groups.setdefault(m.topic, []).append(m)
    return {topic: _newest_first(ms) for topic, ms in groups.items()}


# -- SOUL.md ----------------------------------------------------------------------------------


def _applies(law: Mapping[str, Any], agent: str) -> bool:
    agents = (law.get("scope") or {}).get("agents")
    return agents is None or agent in agents


def _soul_law(law: Mapping[str, Any]) -> dict[str, Any]:
    """A law row of the ``laws`` operation as a SOUL.md law (its agent scope is implied)."""
    spec: dict[str, Any] = {"id": law["id"]}
    if law.get("description"):
        spec["description"] = law["description"]
    spec["kind"] = law["kind"]
    if law.get("params"):
        spec["params"] = law["params"]
    spec["action"] = law["action"]
    kinds = (law.get("scope") or {}).get("kinds")
    if kinds:
        spec["scope"] = {"kinds": list(kinds)}
    return spec


def render_soul(
    agent: str,
    laws: Mapping[str, Any] | None = None,
    *,
    swarm: str | None = None,
    exported_at: str | None = None,
) -> str:
    """A SOUL.md for ``agent`` from what the swarm knows: its name, a personality and
    principles to fill in, and the laws in force that apply to it (``laws``: the
    answer of the ``laws`` operation). Laws set in code (no kind) are listed in the
    text only, since a SOUL.md cannot declare them."""
    rows = [law for law in (laws or {}).get("laws", []) if _applies(law, agent)]
    declared = [_soul_law(law) for law in rows if law.get("kind")]
    in_code = [law for law in rows if not law.get("kind")]
    origin = f" of swarm {swarm}" if swarm else ""
    front: dict[str, Any] = {
        "name": agent,
        "agent": agent,
        "description": f"Agent {agent}{origin}, exported with its memories"
        + (f" on {_when(exported_at)}." if exported_at else "."),
        "personality": "Not recorded in the swarm: describe how this agent thinks and speaks.",
        "principles": [
            "Read MEMORY.md before acting: it indexes what this agent has learned.",
            "Keep private memories private.",
        ],
    }
    if declared:
        front["safety"] = {"laws": declared}
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=88)
    body = [
        f"# {agent}",
        "",
        f"Agent `{agent}`{origin}. Its memories are in [MEMORY.md]({INDEX}).",
    ]
    if declared:
        law_set = (laws or {}).get("law_set")
        version = f" (law set `{law_set}`)" if law_set else ""
        body += ["", f"The laws above are the swarm's laws in force for {agent}{version}."]
    if in_code:
        body += ["", "Laws set in the swarm's code, not declarable here:", ""]
        body += [
            f"- `{law['id']}`: {_inline(str(law.get('description') or ''))}" for law in in_code
        ]
    return f"---\n{text}---\n\n" + "\n".join(body) + "\n"


# -- files ------------------------------------------------------------------------------------


def write_bundle(directory: str | Path, bundle: Bundle, *, soul: str | bytes) -> list[Path]:
    """Write ``bundle`` into ``directory`` (new, empty, or an earlier bundle, whose
    topic files are replaced). ``soul`` is the SOUL.md, written as given. Returns
    the files written, relative to ``directory``."""
    root = Path(directory)
    files = topic_files(bundle.memories)
    groups = _groups(bundle.memories)
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "agent": bundle.agent,
        "swarm": bundle.swarm,
        "exported_at": bundle.exported_at,
        "exported_by": bundle.exported_by,
        "include_forgotten": bundle.include_forgotten,
        "memories": len(bundle.memories),
        "topics": len(files),
    }
    records = "".join(
        json.dumps(m.model_dump(mode="json"), ensure_ascii=False) + "\n" for m in bundle.memories
    )
    out: dict[str, str | bytes] = {
        SOUL: soul,
        INDEX: render_index(bundle, files),
        **{
            f"{TOPICS}/{name}": render_topic(topic, groups[topic], bundle.agent)
            for topic, name in files.items()
        },
        MANIFEST: json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
        RECORDS: records,
    }
    try:
        _prepare(root)
        (root / TOPICS).mkdir(exist_ok=True)
        for name, content in out.items():
            target = root / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8", newline="\n")
    except OSError as err:
        raise ConfigError(f"cannot write the bundle to {root}: {err.strerror or err}") from None
    return [Path(name) for name in out]


def _prepare(root: Path) -> None:
    """Make ``root`` ready: created if missing; an earlier bundle loses its topic files;
    any other non-empty directory is refused."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MANIFEST).is_file():
            raise ConfigError(f"{root} is not empty and holds no bundle: choose a new directory")
        for old in (root / TOPICS).glob("*.md"):
            old.unlink()
    root.mkdir(parents=True, exist_ok=True)


def read_bundle(directory: str | Path) -> Bundle:
    """The bundle in ``directory``. Raises ConfigError naming the file (and line) at fault."""
    root = Path(directory)
    manifest = _read_manifest(root / MANIFEST)
    agent = manifest.get("agent")
    if not isinstance(agent, str) or not agent:
        raise ConfigError(f"{root / MANIFEST}: no agent named")
    records: list[MemoryRecord] = []
    path = root / RECORDS
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(MemoryRecord.model_validate_json(line))
                except ValidationError as err:
                    problem = err.errors()[0]
                    where = ".".join(str(x) for x in problem["loc"])
                    detail = f"{where}: {problem['msg']}" if where else problem["msg"]
                    raise ConfigError(f"{path}:{number}: not a memory: {detail}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    expected = manifest.get("memories")
    if isinstance(expected, int) and expected != len(records):
        raise ConfigError(
            f"{path}: {len(records)} memories, but {MANIFEST} says {expected} (a partial copy?)"
        )
    return Bundle(
        agent=agent,
        memories=tuple(records),
        swarm=_text_or_none(manifest.get("swarm")),
        exported_at=_text_or_none(manifest.get("exported_at")),
        exported_by=_text_or_none(manifest.get("exported_by")),
        include_forgotten=bool(manifest.get("include_forgotten")),
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.parent} holds no bundle (no {MANIFEST})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: not a Swarm Memory bundle")
    version = manifest.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise ConfigError(
            f"{path}: bundle version {version!r}; this Swarm Memory reads version "
            f"{BUNDLE_VERSION} (upgrade it to import this bundle)"
        )
    return manifest


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
