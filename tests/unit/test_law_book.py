"""The law book: the law set folded from its log records, and the records a change needs."""

from __future__ import annotations

from swarm.events import LawEnacted, LawRepealed
from swarm.laws import LawSpec, build_law_set, default_specs
from swarm.laws.book import LawBook


def spec(law_id: str, chars: int = 100, action: str = "reject") -> LawSpec:
    return LawSpec.model_validate(
        {"id": law_id, "kind": "max_content", "params": {"chars": chars}, "action": action}
    )


def settle(book: LawBook, wanted: list[LawSpec], *, first_seq: int = 1) -> list[str]:
    """Apply what changes_to asks for, as the gate does; returns the record types."""
    version = build_law_set(wanted, allow_approval=True).version
    changes = book.changes_to(wanted, version=version, by="operator")
    for offset, record in enumerate(changes):
        book.apply(first_seq + offset, record)
    assert book.specs == wanted
    assert book.version == (version if changes else book.version)
    return [f"{r.type}:{r.law['id'] if isinstance(r, LawEnacted) else r.law_id}" for r in changes]


def test_an_empty_book_enacts_every_wanted_law_in_order() -> None:
    book = LawBook()
    assert not book
    wanted = [*default_specs(), spec("short")]
    assert settle(book, wanted) == ["law.enacted:no-private-data", "law.enacted:short"]
    assert book
    assert [row["id"] for row in book.rows()] == ["no-private-data", "short"]
    assert [row["enacted_seq"] for row in book.rows()] == [1, 2]


def test_the_same_laws_need_no_record() -> None:
    book = LawBook()
    settle(book, [spec("a"), spec("b")])
    assert book.changes_to([spec("a"), spec("b")], version="v", by="operator") == []


def test_a_changed_law_is_enacted_again_and_a_dropped_one_repealed() -> None:
    book = LawBook()
    settle(book, [spec("a"), spec("b"), spec("c")])
    changes = settle(book, [spec("a", chars=50), spec("c")], first_seq=10)
    assert changes == ["law.repealed:b", "law.enacted:a"]
    assert [s.params["chars"] for s in book.specs] == [50, 100]
    history = book.history_rows()
    assert [(h["seq"], h["change"], h["law"]) for h in history[-2:]] == [
        (10, "repealed", "b"),
        (11, "enacted", "a"),
    ]
    assert history[-1]["spec"]["params"] == {"chars": 50}


def test_a_new_order_alone_is_one_record_that_carries_it() -> None:
    book = LawBook()
    settle(book, [spec("a"), spec("b")])
    assert settle(book, [spec("b"), spec("a")], first_seq=5) == ["law.enacted:b"]
    assert [s.id for s in book.specs] == ["b", "a"]


def test_records_carry_the_final_version_and_order() -> None:
    book = LawBook()
    wanted = [spec("a"), spec("b", action="flag")]
    version = build_law_set(wanted, allow_approval=True).version
    changes = book.changes_to(wanted, version=version, by="ops")
    assert {c.law_set for c in changes} == {version}
    assert {c.order for c in changes} == {("a", "b")}
    assert {c.by for c in changes} == {"ops"}


def test_repealing_everything() -> None:
    book = LawBook()
    settle(book, [spec("a")])
    changes = book.changes_to([], version="0:x", by="operator")
    assert len(changes) == 1 and isinstance(changes[0], LawRepealed)
    book.apply(2, changes[0])
    assert book.specs == []
    assert book.version == "0:x"
