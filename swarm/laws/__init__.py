"""Safety laws: validators the gate runs on every proposed event."""

from swarm.laws.base import Law, LawSet, Outcome, Proposal
from swarm.laws.private_data import PrivateDataLaw

__all__ = ["Law", "LawSet", "Outcome", "PrivateDataLaw", "Proposal", "default_laws"]


def default_laws() -> LawSet:
    """The law set a swarm starts with."""
    return LawSet([PrivateDataLaw()])
