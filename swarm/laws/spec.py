"""Laws as data: the :class:`LawSpec` model and the ``laws.yaml`` / ``SOUL.md`` loaders.

A spec says *which* law to run (``kind`` and ``params``), under which ``id``,
with which ``action``, and for whom (``scope``). :mod:`swarm.laws.registry`
turns specs into runnable laws.

Two sources:

* ``laws.yaml``: a top-level ``laws:`` list of specs (mappings) for the swarm.
* an agent's ``SOUL.md`` (Soul Spec style): YAML front matter (``---`` … ``---``)
  or a fenced ``yaml`` block with ``name``, ``personality``, ``principles`` and
  ``safety: {laws: [...]}``. Each law is a spec or a sentence such as "Never
  expose private data", mapped onto a built-in kind (see :data:`NATURAL_LAWS`).
  A soul's laws apply to that agent only.

Every problem (unreadable file, YAML syntax, unknown key, bad value, duplicate
id, a sentence nobody understands) is a :class:`~swarm.errors.ConfigError`
naming the file and the law (by position, and by id when it has one).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from swarm.errors import ConfigError
from swarm.events import NAME_PATTERN
from swarm.laws.base import Action

__all__ = [
    "DEFAULT_ACTIONS",
    "NATURAL_LAWS",
    "LawSpec",
    "NaturalLaw",
    "Scope",
    "agent_id",
    "load_file",
    "load_laws",
    "load_soul",
    "parse_laws",
    "parse_soul",
    "understand",
]

MAX_FILE_BYTES = 1024 * 1024

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
KindName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AgentName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
MemoryKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]

DEFAULT_ACTIONS: dict[str, Action] = {
    "destructive": "require_approval",
    "contradiction": "flag",
}
"""The action of a spec that names none, by kind (any other kind: ``reject``)."""


class Scope(BaseModel):
    """Whom a law applies to. ``None`` means everyone (the whole swarm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[AgentName, ...] | None = Field(
        default=None, description="only events written by these agents"
    )
    kinds: tuple[MemoryKind, ...] | None = Field(
        default=None, description="only memories of these kinds"
    )

    @field_validator("agents", "kinds")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list applies the law to nobody; leave it out for everyone")
        return value

    @property
    def whole_swarm(self) -> bool:
        return self.agents is None and self.kinds is None

    def describe(self) -> str:
        """``swarm``, or e.g. ``agents=planner kinds=decision,fact``."""
        if self.whole_swarm:
            return "swarm"
        parts = []
        if self.agents is not None:
            parts.append("agents=" + ",".join(self.agents))
        if self.kinds is not None:
            parts.append("kinds=" + ",".join(self.kinds))
        return " ".join(parts)


class LawSpec(BaseModel):
    """One law as data: what runs (``kind``, ``params``), as what, how, for whom."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Slug = Field(description="unique within the law set; lower-case letters, digits, - _")
    description: str = Field(default="", max_length=500, description="what the law means")
    kind: KindName = Field(description="a built-in or registered law kind")
    params: dict[str, Any] = Field(default_factory=dict, description="the kind's parameters")
    action: Action = Field(description="reject, flag or require_approval")
    scope: Scope = Field(default_factory=Scope)

    _origin: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _default_action(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "action" not in data:
            kind = data.get("kind")
            action = DEFAULT_ACTIONS.get(kind, "reject") if isinstance(kind, str) else "reject"
            return {**data, "action": action}
        return data

    @property
    def origin(self) -> str:
        """Where the spec came from, for error messages: ``laws.yaml: law #2 (no-pii)``."""
        return self._origin or f"law {self.id}"

    def located(self, origin: str) -> LawSpec:
        """This spec, remembering where it was declared (not part of equality)."""
        self._origin = origin
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LawSpec):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str))


# -- natural-language laws ---------------------------------------------------------------------


@dataclass(frozen=True)
class NaturalLaw:
    """A built-in kind that plain sentences map onto, by the phrases they contain."""

    kind: str
    action: Action
    name: str  # the law id (prefixed with the agent in a SOUL.md)
    phrases: tuple[str, ...]  # as shown to people
    patterns: tuple[str, ...]  # regular expressions over the folded sentence

    def matches(self, sentence: str) -> bool:
        return any(re.search(p, sentence) for p in self.patterns)


NATURAL_LAWS: tuple[NaturalLaw, ...] = (
    NaturalLaw(
        kind="private_data",
        action="reject",
        name="no-private-data",
        phrases=("never expose private data", "personal", "secrets", "credentials", "PII"),
        patterns=(
            r"\bprivate (?:data|information|info)\b",
            r"\bpersonal\b",
            r"\bsecrets?\b",
            r"\bcredentials?\b",
            r"\bpii\b",
        ),
    ),
    NaturalLaw(
        kind="destructive",
        action="require_approval",
        name="ask-before-destructive",
        phrases=("ask before destructive actions", "destructive"),
        patterns=(r"\bdestructive\b",),
    ),
    NaturalLaw(
        kind="contradiction",
        action="flag",
        name="flag-contradictions",
        phrases=("escalate when uncertain", "uncertain", "contradict"),
        patterns=(r"\buncertain(?:ty|ties)?\b", r"\bcontradict\w*"),
    ),
)


def _fold(sentence: str) -> str:
    text = unicodedata.normalize("NFKC", sentence).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def _understood() -> str:
    return "; ".join(
        f"{', '.join(repr(p) for p in n.phrases)} -> {n.kind} ({n.action})" for n in NATURAL_LAWS
    )


def understand(sentence: str) -> NaturalLaw:
    """The built-in kind a sentence means. Raises ConfigError listing the phrases understood."""
    folded = _fold(sentence)
    found = [n for n in NATURAL_LAWS if n.matches(folded)]
    if len(found) == 1:
        return found[0]
    shown = sentence.strip()
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    if not found:
        raise ConfigError(
            f"the sentence {shown!r} does not map onto a built-in law kind; "
            f"phrases understood: {_understood()}; or write the law as a mapping "
            "with id, kind, params and action"
        )
    raise ConfigError(
        f"the sentence {shown!r} mixes several laws ({', '.join(n.kind for n in found)}); "
        "write one law per line"
    )


# -- YAML -------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that refuses a key twice in one mapping (the last one would silently win)."""


def _construct_mapping(loader: _StrictLoader, node: Any, deep: bool = False) -> Any:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping reports it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str, *, first_line: int = 1) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        where = f" at line {mark.line + first_line}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a law file is at most {MAX_FILE_BYTES}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None


# -- specs from documents ---------------------------------------------------------------------

_SPEC_KEYS = tuple(LawSpec.model_fields)


def _errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            known = _SPEC_KEYS if len(e["loc"]) == 1 else tuple(Scope.model_fields)
            msg = f"unknown key (known: {', '.join(known)})"
        else:
            msg = e["msg"]
        parts.append(f"{loc}: {msg}" if loc else msg)
    return join_problems(parts)


def join_problems(parts: Sequence[str], limit: int = 3) -> str:
    """Problems joined by ``; ``, the first ``limit`` of them (an error stays one short line)."""
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def _label(source: str, index: int, item: object) -> str:
    law_id = item.get("id") if isinstance(item, Mapping) else None
    named = f" ({law_id})" if isinstance(law_id, str) and law_id else ""
    return f"{source}: law #{index}{named}"


def _unique(base: str, taken: set[str]) -> str:
    law_id, n = base, 2
    while law_id in taken:
        law_id = f"{base}-{n}"
        n += 1
    return law_id


def _specs(items: object, source: str, *, agent: str | None, where: str = "laws") -> list[LawSpec]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"{source}: {where} must be a list, not {type(items).__name__}")
    specs: list[LawSpec] = []
    ids: dict[str, int] = {}
    for index, item in enumerate(items, start=1):
        label = _label(source, index, item)
        if isinstance(item, str):
            try:
                natural = understand(item)
            except ConfigError as err:
                raise ConfigError(f"{label}: {err}") from None
            base = f"{agent}-{natural.name}"[:64] if agent else natural.name
            data: dict[str, Any] = {
                "id": _unique(base, set(ids)),
                "description": " ".join(item.split())[:500],
                "kind": natural.kind,
                "action": natural.action,
            }
        elif isinstance(item, Mapping):
            data = dict(item)
        else:
            raise ConfigError(
                f"{label}: a law is a sentence or a mapping, not {type(item).__name__}"
            )
        if agent is not None:
            data = _own_scope(data, agent, label)
        try:
            spec = LawSpec.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"{label}: {_errors(err)}") from None
        if spec.id in ids:
            raise ConfigError(f"{label}: law id {spec.id!r} is already used by law #{ids[spec.id]}")
        ids[spec.id] = index
        specs.append(spec.located(_label(source, index, {"id": spec.id})))
    return specs


def _own_scope(data: dict[str, Any], agent: str, label: str) -> dict[str, Any]:
    """A SOUL.md law applies to its own agent: set ``scope.agents`` to it."""
    scope = data.get("scope", {})
    if not isinstance(scope, Mapping):
        return data  # validation reports the wrong type
    agents = scope.get("agents")
    if agents is not None and list(agents) != [agent]:
        raise ConfigError(
            f"{label}: a SOUL.md law applies to its own agent ({agent}) only; "
            "put laws for other agents in laws.yaml"
        )
    return {**data, "scope": {**scope, "agents": [agent]}}


def parse_laws(text: str, source: str = "laws.yaml") -> list[LawSpec]:
    """The specs of a ``laws.yaml`` document (``source`` names it in errors)."""
    doc = _parse_yaml(text, source)
    if not isinstance(doc, Mapping) or "laws" not in doc:
        raise ConfigError(f"{source}: expected a top-level `laws:` list")
    unknown = sorted(str(k) for k in doc if k != "laws")
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: laws)")
    return _specs(doc["laws"], source, agent=None)


def load_laws(path: str | Path) -> list[LawSpec]:
    """The specs of a ``laws.yaml`` file."""
    path = Path(path)
    return parse_laws(_read(path), str(path))


# -- SOUL.md ----------------------------------------------------------------------------------

_FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_DELIMITER = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
_SAFETY_KEYS = ("laws",)


def _front_matter(text: str, source: str) -> tuple[str, int]:
    """The YAML of a soul and the file line it starts on."""
    text = text.removeprefix("\ufeff")
    first, _, rest = text.partition("\n")
    if first.rstrip() == "---":
        end = _DELIMITER.search(rest)
        if end is None:
            raise ConfigError(f"{source}: the front matter opened by --- on line 1 is not closed")
        return rest[: end.start()], 2
    fenced = _FENCE.search(text)
    if fenced is None:
        raise ConfigError(
            f"{source}: no YAML front matter (--- ... ---) and no ```yaml block found"
        )
    return fenced.group(1), text.count("\n", 0, fenced.start(1)) + 1


def agent_id(name: str) -> str:
    """The agent id a soul's ``name`` stands for: ``"Release Planner"`` -> ``release-planner``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_]+", "-", ascii_name.lower()).strip("-_")[:64].strip("-_")


def _text(value: object, key: str, source: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be text, not {type(value).__name__}")


def parse_soul(text: str, source: str = "SOUL.md") -> list[LawSpec]:
    """The laws of a SOUL.md document, scoped to its agent."""
    body, first_line = _front_matter(text, source)
    doc = _parse_yaml(body, source, first_line=first_line)
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: the soul must be a YAML mapping with a name")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{source}: the soul needs a `name`")
    explicit = doc.get("agent")
    _text(explicit, "agent", source)
    agent = explicit if isinstance(explicit, str) else agent_id(name)
    if not re.fullmatch(NAME_PATTERN, agent):
        raise ConfigError(
            f"{source}: {agent!r} is not a valid agent id (lower-case letters, digits, - and _; "
            "set `agent:` to the id the agent writes as)"
        )
    _text(doc.get("personality"), "personality", source)
    principles = doc.get("principles")
    if principles is not None and (
        not isinstance(principles, list) or not all(isinstance(p, str) for p in principles)
    ):
        raise ConfigError(f"{source}: principles must be a list of sentences")
    safety = doc.get("safety")
    if safety is None:
        return []
    if not isinstance(safety, Mapping):
        raise ConfigError(f"{source}: safety must be a mapping with a `laws:` list")
    unknown = sorted(str(k) for k in safety if k not in _SAFETY_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key safety.{unknown[0]} (known: safety.laws)")
    return _specs(safety.get("laws"), source, agent=agent, where="safety.laws")


def load_soul(path: str | Path) -> list[LawSpec]:
    """The laws of an agent's SOUL.md file, scoped to that agent."""
    path = Path(path)
    return parse_soul(_read(path), str(path))


FileKind = Literal["laws", "soul"]


def detect(path: Path, text: str) -> FileKind:
    """Whether a file is a laws.yaml or a SOUL.md: by its suffix, else by its content."""
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return "soul"
    if suffix in (".yaml", ".yml"):
        return "laws"
    if re.search(r"^laws[ \t]*:", text, re.MULTILINE) and not _FENCE.search(text):
        return "laws"
    return "soul"


def load_file(path: str | Path) -> tuple[FileKind, list[LawSpec]]:
    """Load a laws.yaml or a SOUL.md, telling them apart by name or content."""
    path = Path(path)
    text = _read(path)
    kind = detect(path, text)
    specs = parse_laws(text, str(path)) if kind == "laws" else parse_soul(text, str(path))
    return kind, specs


def specs_table(specs: Sequence[LawSpec]) -> list[dict[str, object]]:
    """The specs as plain rows (what ``swarm laws check --json`` prints)."""
    return [
        {
            "id": s.id,
            "kind": s.kind,
            "action": s.action,
            "scope": s.scope.model_dump(mode="json"),
            "description": s.description,
        }
        for s in specs
    ]
