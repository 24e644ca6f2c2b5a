"""The law set as the log records it.

Enacting, changing and repealing a law are system records in the log
(``law.enacted``, ``law.repealed`` on ``swarm.<swarm>.sys.laws``). A
:class:`LawBook` folds them into the current ordered list of specs, and says
which records turn it into a wanted list. Pure: the gate does the I/O.

Each record carries the whole resulting order and the law-set version from it
on, so one record is enough to know where the law stands, and every accepted
event's ``verdict.law_set`` points back at the records that defined it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from swarm.events import LawEnacted, LawRepealed
from swarm.laws.spec import LawSpec

__all__ = ["LawBook", "LawChange"]

LawChange = LawEnacted | LawRepealed


@dataclass(frozen=True)
class _Entry:
    spec: LawSpec
    seq: int
    at: datetime


class LawBook:
    """The current law specs and every change to them, in log order."""

    def __init__(self) -> None:
        self._laws: dict[str, _Entry] = {}
        self._order: tuple[str, ...] = ()
        self.version: str | None = None
        self.history: list[tuple[int, LawChange]] = []

    def __bool__(self) -> bool:
        return bool(self.history)

    def apply(self, seq: int, record: LawChange) -> None:
        if isinstance(record, LawEnacted):
            spec = LawSpec.model_validate(record.law)
            self._laws[spec.id] = _Entry(spec, seq, record.at)
        else:
            self._laws.pop(record.law_id, None)
        self._order = tuple(i for i in record.order if i in self._laws)
        self.version = record.law_set
        self.history.append((seq, record))

    @property
    def specs(self) -> list[LawSpec]:
        """The laws in force, in the order they run."""
        return [self._laws[i].spec for i in self._order]

    def changes_to(self, wanted: Sequence[LawSpec], *, version: str, by: str) -> list[LawChange]:
        """The records that make ``wanted`` (in its order) the law; [] if it already is.

        ``version`` is the wanted set's version (every record carries it: the
        records of one change are written together, no event sees a state between).
        """
        if self.specs == list(wanted):
            return []
        order = tuple(spec.id for spec in wanted)
        changes: list[LawChange] = [
            LawRepealed(law_id=i, law_set=version, order=order, by=by)
            for i in self._order
            if i not in order
        ]
        current = {i: self._laws[i].spec for i in self._order}
        for spec in wanted:
            if current.get(spec.id) != spec:
                changes.append(
                    LawEnacted(
                        law=spec.model_dump(mode="json"), law_set=version, order=order, by=by
                    )
                )
        if not changes:  # only the order moved: one record carries the new order
            first = wanted[0]
            changes.append(
                LawEnacted(law=first.model_dump(mode="json"), law_set=version, order=order, by=by)
            )
        return changes

    def rows(self) -> list[dict[str, Any]]:
        """The laws in force, for `swarm laws list`."""
        return [
            {
                **self._laws[i].spec.model_dump(mode="json"),
                "enacted_seq": self._laws[i].seq,
                "enacted_at": self._laws[i].at.isoformat(),
            }
            for i in self._order
        ]

    def history_rows(self) -> list[dict[str, Any]]:
        """Every change, oldest first, for `swarm laws history`."""
        out = []
        for seq, record in self.history:
            law_id = record.law["id"] if isinstance(record, LawEnacted) else record.law_id
            out.append(
                {
                    "seq": seq,
                    "at": record.at.isoformat(),
                    "change": "enacted" if isinstance(record, LawEnacted) else "repealed",
                    "law": law_id,
                    "by": record.by,
                    "law_set": record.law_set,
                    "spec": record.law if isinstance(record, LawEnacted) else None,
                }
            )
        return out
