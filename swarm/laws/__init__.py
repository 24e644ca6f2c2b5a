"""Safety laws: validators the gate runs on every proposed event.

* :mod:`.base`: the ``Law`` protocol, ``LawSet`` and its ``Judgement``.
* :mod:`.spec`: laws as data (``LawSpec``), from a ``laws.yaml`` or a ``SOUL.md``.
* :mod:`.registry`: law kinds by name (built-ins, ``@register``, entry points).
* :mod:`.kinds`: the built-in kinds and the scope wrapper.
* :mod:`.book`: the law set as the log records it (enacted / repealed records).
"""

from swarm.laws.base import Judgement, Law, LawSet, Outcome, Pending, Proposal, trial_proposal
from swarm.laws.private_data import PrivateDataLaw
from swarm.laws.registry import build, build_law_set, known_kinds, law_from_check, register
from swarm.laws.spec import LawSpec, Scope, load_file, load_laws, load_soul

__all__ = [
    "Judgement",
    "Law",
    "LawSet",
    "LawSpec",
    "Outcome",
    "Pending",
    "PrivateDataLaw",
    "Proposal",
    "Scope",
    "build",
    "build_law_set",
    "default_laws",
    "default_specs",
    "known_kinds",
    "law_from_check",
    "laws_from_file",
    "load_file",
    "load_laws",
    "load_soul",
    "register",
    "specs_from_file",
    "trial_proposal",
]


def default_specs() -> list[LawSpec]:
    """The laws a swarm starts with, as data (what the log records on first start)."""
    law = PrivateDataLaw()
    return [
        LawSpec(
            id=law.id,
            description=law.description,
            kind="private_data",
            params={"kinds": sorted(law.kinds)},
            action="reject",
        )
    ]


def default_laws() -> LawSet:
    """The law set a swarm starts with."""
    return build_law_set(default_specs(), allow_approval=True)


def specs_from_file(path: str) -> list[LawSpec]:
    """The laws of a ``laws.yaml`` or an agent's ``SOUL.md``, as the gate enacts them.

    The default ``no-private-data`` law stays first unless the file defines a law
    with that id. Every spec is built once here, so a bad one fails now.
    """
    _, specs = load_file(path)
    ids = {spec.id for spec in specs}
    wanted = [spec for spec in default_specs() if spec.id not in ids] + list(specs)
    build_law_set(wanted, allow_approval=True)
    return wanted


def laws_from_file(path: str) -> LawSet:
    """The law set of a file (see :func:`specs_from_file`), as the gate runs it."""
    return build_law_set(specs_from_file(path), allow_approval=True)
