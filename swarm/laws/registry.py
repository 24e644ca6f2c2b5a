"""Law kinds by name: turn :class:`~swarm.laws.spec.LawSpec` data into runnable laws.

A kind is a factory ``factory(spec) -> Law``. The built-in kinds are in
:mod:`swarm.laws.kinds`; more come from

* ``@register("my_kind")`` on a factory, in-process, or
* a Python entry point in the group ``swarm.laws`` whose name is the kind and
  whose object is the factory (installed packages; loaded when first needed)::

      [project.entry-points."swarm.laws"]
      no_shouting = "my_laws:no_shouting"

A built-in kind wins over an entry point of the same name. A spec with a
``scope`` is wrapped in :class:`~swarm.laws.kinds.Scoped`, whatever its kind.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from swarm.errors import ConfigError
from swarm.laws.base import Law, LawSet
from swarm.laws.kinds import BUILTIN_KINDS, Factory, FunctionLaw, Scoped, law_from_check
from swarm.laws.spec import LawSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "Factory",
    "FunctionLaw",
    "Registry",
    "build",
    "build_law_set",
    "default_registry",
    "known_kinds",
    "law_from_check",
    "register",
]

ENTRY_POINT_GROUP = "swarm.laws"
_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

F = TypeVar("F", bound=Factory)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as err:  # broken package metadata must not hide the built-in kinds
        raise ConfigError(f"cannot list the {ENTRY_POINT_GROUP!r} entry points: {err}") from None
    return {ep.name: ep for ep in found}


class Registry:
    """Law kinds by name: built-ins, registered factories and entry points."""

    def __init__(
        self, kinds: Mapping[str, Factory] | None = None, *, entry_points: bool = True
    ) -> None:
        self._kinds: dict[str, Factory] = dict(BUILTIN_KINDS if kinds is None else kinds)
        self._entry_points = entry_points

    def register(self, kind: str) -> Callable[[F], F]:
        """Decorator: make ``factory`` the law kind ``kind``."""
        if not _KIND_NAME.match(kind):
            raise ConfigError(
                f"law kind {kind!r}: use 1-64 lower-case letters, digits and _, "
                "starting with a letter"
            )

        def decorate(factory: F) -> F:
            known = self._kinds.get(kind)
            if known is not None and known is not factory:
                raise ConfigError(f"law kind {kind!r} is already registered")
            self._kinds[kind] = factory
            return factory

        return decorate

    def known_kinds(self) -> list[str]:
        """Every kind a spec may name, sorted."""
        names = set(self._kinds)
        if self._entry_points:
            names |= set(_entry_points())
        return sorted(names)

    def factory(self, kind: str, *, origin: str | None = None) -> Factory:
        """The factory of ``kind``. Raises ConfigError listing the known kinds."""
        where = f"{origin}: " if origin else ""
        found = self._kinds.get(kind)
        if found is not None:
            return found
        entry = _entry_points().get(kind) if self._entry_points else None
        if entry is None:
            raise ConfigError(
                f"{where}unknown law kind {kind!r} (known: {', '.join(self.known_kinds())})"
            )
        try:
            loaded = entry.load()
        except Exception as err:
            raise ConfigError(
                f"{where}law kind {kind!r}: cannot load entry point {entry.value!r}: "
                f"{type(err).__name__}: {err}"
            ) from None
        if not callable(loaded):
            raise ConfigError(
                f"{where}law kind {kind!r}: entry point {entry.value!r} is not a factory function"
            )
        factory: Factory = loaded
        return factory

    def build(self, spec: LawSpec) -> Law:
        """The law a spec describes, wrapped in its scope."""
        factory = self.factory(spec.kind, origin=spec.origin)
        try:
            law = factory(spec)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(
                f"{spec.origin}: kind {spec.kind} could not build the law: "
                f"{type(err).__name__}: {err}"
            ) from None
        if not isinstance(law, Law):
            raise ConfigError(
                f"{spec.origin}: kind {spec.kind} returned a {type(law).__name__}, not a law "
                "(id, description, action, check and params)"
            )
        if law.id != spec.id or law.action != spec.action:
            raise ConfigError(
                f"{spec.origin}: kind {spec.kind} returned law {law.id!r} with action "
                f"{law.action!r}; the spec says {spec.id!r} with {spec.action!r}"
            )
        scope = spec.scope
        if scope.whole_swarm:
            return law
        return Scoped(
            law,
            agents=frozenset(scope.agents) if scope.agents is not None else None,
            kinds=frozenset(scope.kinds) if scope.kinds is not None else None,
        )

    def build_law_set(self, specs: Iterable[LawSpec], *, allow_approval: bool = False) -> LawSet:
        """An ordered law set from specs (see :class:`LawSet` for ``allow_approval``)."""
        specs = list(specs)
        seen: dict[str, LawSpec] = {}
        for spec in specs:
            if spec.id in seen:
                raise ConfigError(
                    f"{spec.origin}: law id {spec.id!r} is also declared at {seen[spec.id].origin}"
                )
            seen[spec.id] = spec
            if spec.action == "require_approval" and not allow_approval:
                raise ConfigError(
                    f"{spec.origin}: action 'require_approval' is not supported here "
                    "(nothing holds events for approval yet)"
                )
        return LawSet([self.build(s) for s in specs], allow_approval=allow_approval, specs=specs)


_DEFAULT = Registry()


def default_registry() -> Registry:
    """The process-wide registry that :func:`register` and :func:`build` use."""
    return _DEFAULT


def register(kind: str) -> Callable[[F], F]:
    """Decorator: register a factory as law kind ``kind`` in the default registry."""
    return _DEFAULT.register(kind)


def known_kinds() -> list[str]:
    return _DEFAULT.known_kinds()


def build(spec: LawSpec) -> Law:
    return _DEFAULT.build(spec)


def build_law_set(specs: Iterable[LawSpec], *, allow_approval: bool = False) -> LawSet:
    return _DEFAULT.build_law_set(specs, allow_approval=allow_approval)
