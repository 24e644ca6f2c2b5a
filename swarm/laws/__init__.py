"""Safety laws: validators the gate runs on every proposed event.

* :mod:`.base`: the ``Law`` protocol, ``LawSet`` and its ``Judgement``.
* :mod:`.spec`: laws as data (``LawSpec``), from a ``laws.yaml`` or a ``SOUL.md``.
* :mod:`.registry`: law kinds by name (built-ins, ``@register``, entry points).
* :mod:`.kinds`: the built-in kinds and the scope wrapper.
"""

from swarm.errors import ConfigError
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
    "known_kinds",
    "law_from_check",
    "laws_from_file",
    "load_file",
    "load_laws",
    "load_soul",
    "register",
    "trial_proposal",
]


def default_laws() -> LawSet:
    """The law set a swarm starts with."""
    return LawSet([PrivateDataLaw()])


def laws_from_file(path: str) -> LawSet:
    """The law set of a ``laws.yaml`` or an agent's ``SOUL.md``, as the gate runs it.

    The default ``no-private-data`` law stays first unless the file defines a law
    with that id. Laws whose action is ``require_approval`` are refused until the
    approval flow exists (they would otherwise have to be silently accepted).
    """
    _, specs = load_file(path)
    waiting = [spec.id for spec in specs if spec.action == "require_approval"]
    if waiting:
        raise ConfigError(
            f"{path}: law(s) {', '.join(waiting)} need the approval flow, which this release "
            "does not have yet: remove them or change their action to reject or flag"
        )
    laws = [build(spec) for spec in specs]
    ids = {law.id for law in laws}
    defaults = [law for law in default_laws().laws if law.id not in ids]
    return LawSet([*defaults, *laws])
