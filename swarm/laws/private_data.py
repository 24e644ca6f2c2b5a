"""Never expose private data: reject writes that carry personal data or card numbers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from swarm.laws.base import Action, Outcome, Proposal
from swarm.laws.detectors import scan_fields

__all__ = ["PrivateDataLaw"]

DEFAULT_KINDS = ("email", "phone", "card")


@dataclass(frozen=True)
class PrivateDataLaw:
    """Rejects (or flags) a memory whose content, kind or tags hold private data.

    Detection normalises Unicode first (full-width digits, zero-width
    characters, odd dashes and spaces) and also reads the fields joined, so a
    number split between the content and a tag is still found. The reason
    names the kind of data and where it is, never the data itself.
    """

    id: str = "no-private-data"
    description: str = "Never expose private data (emails, phone numbers, payment cards)"
    action: Action = "reject"
    kinds: Collection[str] = field(default=DEFAULT_KINDS)

    def check(self, proposal: Proposal) -> Outcome:
        if (
            proposal.before is not None
            and proposal.before.text_fields() == proposal.after.text_fields()
        ):
            return Outcome.passed()
        findings = scan_fields(proposal.after.text_fields(), kinds=self.kinds)
        if not findings:
            return Outcome.passed()
        kinds = sorted({f.kind for f in findings})
        return Outcome(
            ok=False,
            reason=(
                f"the memory contains private data ({', '.join(kinds)}); redact it before writing"
            ),
            where="; ".join(f.describe() for f in findings[:5]),
        )

    def params(self) -> dict[str, object]:
        return {"kinds": sorted(self.kinds)}
