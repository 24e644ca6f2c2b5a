"""Private-data detectors: what they find, what they leave alone, and how fast."""

from __future__ import annotations

import ast
import json
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from swarm.laws import detectors
from swarm.laws.detectors import (
    Finding,
    find_private_data,
    luhn_ok,
    normalise,
    redact,
    scan_fields,
)

HOSTILE = Path(__file__).parent / "hostile"


def kinds(text: str) -> list[str]:
    return sorted(f.kind for f in find_private_data(text))


def matched(text: str) -> list[str]:
    return [text[f.start : f.end] for f in find_private_data(text)]


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid (independent of the module)."""
    for check in "0123456789":
        number = body + check
        total = 0
        for i, ch in enumerate(reversed(number)):
            value = int(ch) * (2 if i % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable")


# -- emails ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "write to john.doe@example.com today",
        "JOHN.DOE@EXAMPLE.COM",
        "first.last+tag@mail.sub.example.co.uk",
        "o'brien@example.ie",
        "<jane_doe@corp.io>",
        "mailto:sales@acme.fr",
    ],
)
def test_finds_email_in_plain_form(text: str) -> None:
    assert kinds(text) == ["email"]


@pytest.mark.parametrize(
    "text",
    [
        "john (at) example (dot) com",
        "john[at]example[dot]com",
        "jane [at] corp [dot] co [dot] uk",
        "john.doe (AT) example.com",
        "bob {at} example {dot} org",
    ],
)
def test_finds_email_in_bracketed_at_dot_form(text: str) -> None:
    assert kinds(text) == ["email"]


@pytest.mark.parametrize(
    "text",
    [
        "meet at the park at 5",
        "look at example dot com later",
        "the cat sat at the mat (at last)",
        "@mention and @here",
        "user@localhost",
        "icon@2x.png",
        "git@github.com:org/repo.git",
        "pkg@1.2.3 and @types/node@18.0.0",
        "a@b.c",
    ],
)
def test_ignores_email_look_alikes(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "jo\u200bhn@exam\u200dple.com",
        fullwidth("john@example.com"),
        "john\ufe6bexample.com",
        "john@example\u3002com",
        "j\u00adohn@example.com",
    ],
)
def test_finds_email_in_evasive_form(text: str) -> None:
    assert kinds(text) == ["email"]


# -- phones ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "+1 (415) 555-2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+7 (495) 123-45-67",
        "+1.415.555.2671",
        "tel:+1-415-555-2671",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "415 555 2671",
        "555-1234",
        "1 800 555 1234",
        "020 7946 0958",
        "06 12 34 56 78",
        "030 1234567",
        "030/1234567",
        "0412 345 678",
        "98765 43210",
        "4155552671",
        "07700900123",
        "call me on 612 345 678",
    ],
)
def test_finds_phone_in_international_and_national_form(text: str) -> None:
    assert kinds(text) == ["phone"]


@pytest.mark.parametrize(
    "text",
    [
        "+1\u00a0415\u00a0555\u00a02671",
        "+44\u2007 20 7946 0958".replace("\u2007 ", "\u2007"),
        "415\u2013555\u20132671",
        "415\u2012555\u20122671",
        "415\u200b-555\u200b-2671",
        fullwidth("(415) 555-2671"),
        "+" + "".join(chr(0x660 + int(c)) if c.isdigit() else c for c in "971 50 123 4567"),
        "090\u30fc1234\u30fc5678",
    ],
)
def test_finds_phone_in_evasive_form(text: str) -> None:
    assert kinds(text) == ["phone"]


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-01-15",
        "released on 15/01/2024 and 01.02.2024",
        "at 10:30:45 and 23:59",
        "2024-01-15T10:30:00Z",
        "version 1.2.3 and 10.15.7",
        "Windows 10.0.19045.3693",
        "hosts 10.0.0.1 and 192.168.100.200",
        "pi is 3.14159265358",
        "price $1,234,567.89",
        "\u20ac1.234.567,89",
        "1 234 567 EUR",
        "10.000.000 units",
        "ISBN 978-3-16-148410-0",
        "ISBN 9783161484100",
        "ISBN 0-306-40615-2",
        "order #1234567890",
        "ORD-2024-000123",
        "order 5551234567",
        "epoch 1700000000 and 1700000000123 ms",
        "in 2019 2020 2021",
        "from 2019-2024",
        "scores 10 20 30 40 50 60",
        "at 40.7128 -74.0060",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "only 42 items",
        "between 1000 and 2000",
    ],
)
def test_ignores_numbers_that_are_not_phones(text: str) -> None:
    assert kinds(text) == []


def test_finds_phone_beside_a_date_without_the_date() -> None:
    assert matched("2019-2024 555-1234") == ["555-1234"]
    assert matched("on 2024-01-15 call 415-555-2671") == ["415-555-2671"]


# -- cards -------------------------------------------------------------------

TEST_CARDS = {
    "visa": "4111111111111111",
    "visa-13": "4222222222222",
    "mastercard": "5555555555554444",
    "mastercard-2-series": "2223003122003222",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "discover-65": "6500000000000002",
    "jcb": "3530111333300000",
    "diners": "30569309025904",
    "diners-38": "38520000023237",
    "unionpay": "6200000000000005",
}


@pytest.mark.parametrize("number", TEST_CARDS.values(), ids=TEST_CARDS.keys())
def test_finds_card_of_each_known_brand(number: str) -> None:
    assert kinds(f"card {number} exp 12/27") == ["card"]
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    assert kinds(spaced) == ["card"]
    assert kinds(spaced.replace(" ", "-")) == ["card"]


@pytest.mark.parametrize(
    "text",
    [
        "4111\u200b1111\u200b1111\u200b1111",
        "4111\u200c1111\u200d1111\u20601111\ufeff",
        "4111\u00ad1111\u00ad1111\u00ad1111",
        fullwidth("4111 1111 1111 1111"),
        "4111\u00a01111\u00a01111\u00a01111",
        "4111\u20071111\u20071111\u20071111",
        "4111\u202f1111\u202f1111\u202f1111",
        "4111\u20131111\u20141111\u22121111",
        "\u202e4111 1111 1111 1111\u202c",
        "".join(chr(0x660 + int(c)) for c in "4111111111111111"),
    ],
)
def test_finds_card_in_evasive_form(text: str) -> None:
    assert kinds(text) == ["card"]


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",
        "4111 1111 1111 1112",
        "5555-5555-5555-4445",
    ],
)
def test_ignores_luhn_invalid_16_digit_number(text: str) -> None:
    assert kinds(text) == []


def test_ignores_luhn_valid_number_with_unknown_prefix() -> None:
    number = luhn_complete("123456789012345")
    assert luhn_ok(number)
    assert kinds(number) == []
    assert kinds(" ".join(number[i : i + 4] for i in range(0, 16, 4))) == []


def test_finds_both_cards_in_one_run() -> None:
    assert kinds("4111 1111 1111 1111 5555 4444 3333 1111") == ["card", "card"]


def test_reports_card_not_phone_for_amex_grouping() -> None:
    assert kinds("3782 822463 10005") == ["card"]


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("4111111111111111", True),
        ("", False),
        ("0", False),
        ("12a4", False),
        ("\uff14\uff12", False),
    ],
)
def test_luhn_ok_checks_ascii_digit_strings(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


# -- normalisation and offsets -------------------------------------------------


def test_normalise_folds_width_and_drops_invisible_characters() -> None:
    folded, index = normalise("\uff41\u200b\uff11\u00a0\u2013\u00ad\ufeffx")
    assert folded == "a1 -x"
    assert index == [0, 2, 3, 4, 7]


def test_normalise_keeps_ascii_text_and_identity_index() -> None:
    assert normalise("plain 123") == ("plain 123", list(range(9)))


def test_normalise_maps_expanded_characters_to_their_source() -> None:
    folded, index = normalise("a\ufb01b")  # the fi ligature becomes two characters
    assert folded == "afib"
    assert index == [0, 1, 1, 2]


def test_reports_offsets_into_the_original_text() -> None:
    text = "\u200b\u200bcard: \uff14\uff11\uff11\uff11\u200b1111 1111 1111!"
    [finding] = find_private_data(text)
    assert finding.kind == "card"
    assert text[finding.start] == "\uff14"
    assert text[finding.end - 1] == "1"
    assert text[finding.end] == "!"


def test_reports_email_offsets_exactly() -> None:
    text = "mail jo\u200bhn@example.com now"
    [finding] = find_private_data(text, field="tags")
    assert (finding.field, text[finding.start : finding.end]) == ("tags", "jo\u200bhn@example.com")


def test_describe_names_kind_field_and_place_but_never_the_secret() -> None:
    secrets = ["john.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"]
    text = " / ".join(secrets)
    findings = find_private_data(text)
    assert [f.kind for f in findings] == ["email", "phone", "card"]
    for finding in findings:
        line = finding.describe()
        assert f"in content at {finding.start}-{finding.end}" in line
        for fragment in [*secrets, "john", "example", "7946", "0958", "1111"]:
            assert fragment not in line
            assert fragment not in repr(finding)
    assert findings[0].describe() == "email address in content at 0-20"


def test_describe_labels_future_kinds() -> None:
    assert Finding("api_key", "content", 1, 9).describe() == "API key in content at 1-9"
    assert Finding("new_kind", "tags", 0, 3).describe() == "new kind in tags at 0-3"


# -- kinds -------------------------------------------------------------------


def test_finds_only_requested_kinds() -> None:
    text = "john@example.com 4111 1111 1111 1111 +44 20 7946 0958"
    assert [f.kind for f in find_private_data(text, kinds={"card"})] == ["card"]
    assert [f.kind for f in find_private_data(text, kinds=["email", "phone"])] == ["email", "phone"]


def test_never_reports_card_as_phone_when_only_phones_requested() -> None:
    assert find_private_data("3782 822463 10005", kinds={"phone"}) == []


def test_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="ssn"):
        find_private_data("x", kinds={"ssn"})


# -- fields ------------------------------------------------------------------


def test_scan_fields_reports_each_field_by_name() -> None:
    findings = scan_fields(
        {"content": "mail john@example.com", "kind": "note", "tags": ["ops", "+44 20 7946 0958"]}
    )
    assert [(f.kind, f.field) for f in findings] == [("email", "content"), ("phone", "tags")]
    tags = "ops +44 20 7946 0958"
    assert tags[findings[1].start : findings[1].end] == "+44 20 7946 0958"


def test_scan_fields_finds_card_split_between_content_and_tag() -> None:
    fields = {"content": "my card 4111 1111", "kind": "note", "tags": ["1111 1111", "x"]}
    cards = [f for f in scan_fields(fields) if f.kind == "card"]
    assert [(f.field, f.start, f.end) for f in cards] == [("content+tags", 8, 27)]
    assert "my card 4111 1111 1111 1111 x"[8:27] == "4111 1111 1111 1111"


def test_scan_fields_finds_card_split_in_reverse_field_order() -> None:
    fields = {"content": "1111 1111 thanks", "kind": "note", "tags": ["card 4111 1111"]}
    assert [f.field for f in scan_fields(fields) if f.kind == "card"] == ["tags+content"]


def test_scan_fields_finds_card_split_across_tags() -> None:
    fields = {"content": "", "tags": ["4111\u200b1111", "1111", "1111"]}
    assert [(f.kind, f.field) for f in scan_fields(fields)] == [("card", "tags")]


def test_scan_fields_finds_phone_split_between_neighbouring_fields() -> None:
    findings = scan_fields({"content": "call 415 555", "kind": "2671"})
    assert [(f.kind, f.field, f.start, f.end) for f in findings] == [
        ("phone", "content+kind", 5, 17)
    ]


def test_scan_fields_reports_nothing_for_clean_fields() -> None:
    assert scan_fields({"content": "deploy went fine", "kind": "note", "tags": ["ops"]}) == []


# -- redaction ---------------------------------------------------------------


def test_redact_replaces_each_finding_with_its_kind() -> None:
    text = "card 4111 1111 1111 1111, mail john@example.com, call +44 20 7946 0958."
    assert redact(text) == ("card [REDACTED:card], mail [REDACTED:email], call [REDACTED:phone].")


def test_redact_only_requested_kinds() -> None:
    assert redact("john@example.com 4111111111111111", kinds={"email"}) == (
        "[REDACTED:email] 4111111111111111"
    )


def test_redact_leaves_clean_text_unchanged() -> None:
    text = "Release 2.14.3 shipped on 2024-01-15; caf\u00e9 \u2014 fine"
    assert redact(text) == text


def test_redact_removes_evasive_secret_with_its_invisible_characters() -> None:
    assert redact("x 4111\u200b1111\u200b1111\u200b1111 y") == "x [REDACTED:card] y"


# -- hostile corpus ------------------------------------------------------------


def _hostile_cases() -> list[Any]:
    cases: list[Any] = []
    for path in sorted(HOSTILE.glob("*.json")):
        cases.extend(pytest.param(case, id=case["id"]) for case in json.loads(path.read_text()))
    return cases


@pytest.mark.parametrize("case", _hostile_cases())
def test_hostile_input_yields_expected_kinds(case: dict[str, Any]) -> None:
    text: str = case["text"]
    assert kinds(text) == sorted(case["expect"]), case["note"]
    assert find_private_data(redact(text)) == []


def test_hostile_corpus_is_big_enough() -> None:
    assert len(_hostile_cases()) >= 40


@pytest.mark.parametrize(
    "text",
    [
        "a" * 20_000 + "@",
        "a." * 10_000 + "@" + "b-" * 10_000,
        ("x" * 60 + "@") * 500,
        "1 " * 20_000,
        "1-" * 20_000 + "1",
        "(1)" * 10_000,
        "12 34 " * 5_000,
        "4" * 40_000,
        "+1 " * 10_000,
        "(at) " * 5_000 + "a" * 5_000,
        "a (at) " + "b-" * 10_000 + "c",
        "\u200b" * 20_000 + "4111111111111111",
        "\uff11" * 20_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_scans_pathological_input_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    find_private_data(text)
    assert time.perf_counter() - started < 1.0


# -- properties ----------------------------------------------------------------

IIN_RANGES: list[tuple[int, int, tuple[int, ...]]] = [
    (4, 4, (13, 16, 19)),
    (51, 55, (16,)),
    (2221, 2720, (16,)),
    (34, 34, (15,)),
    (37, 37, (15,)),
    (6011, 6011, (16, 17, 18, 19)),
    (65, 65, (16, 19)),
    (644, 649, (16, 19)),
    (3528, 3589, (16, 19)),
    (36, 36, (14, 16, 19)),
    (38, 38, (14, 16)),
    (300, 305, (14, 16)),
    (62, 62, (16, 19)),
]


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    low, high, lengths = draw(st.sampled_from(IIN_RANGES))
    prefix = str(draw(st.integers(low, high)))
    length = draw(st.sampled_from(lengths))
    body = draw(
        st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    return luhn_complete(prefix + body)


SEPARATORS = [
    "",
    "",
    "",
    " ",
    "-",
    "\u00a0",
    "\u2007",
    "\u202f",
    "\u2010",
    "\u2011",
    "\u2013",
    "\u2014",
    "\u2212",
    "\u3000",
]
INVISIBLE = [
    "",
    "",
    "",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u202e",
    "\u2066",
    "\ufe0f",
    "\u0301",
]
DIGIT_BASES = [0x30, 0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x1D7CE]


@st.composite
def disguised_cards(draw: st.DrawFn) -> tuple[str, str]:
    """A valid card number and the same number dressed up to evade a naive regex."""
    number = draw(card_numbers())
    n = len(number)
    bases = draw(st.lists(st.sampled_from(DIGIT_BASES), min_size=n, max_size=n))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=n - 1, max_size=n - 1))
    hidden = draw(st.lists(st.sampled_from(INVISIBLE), min_size=2 * n, max_size=2 * n))
    out = []
    for k, digit in enumerate(number):
        out.append(chr(bases[k] + int(digit)) + hidden[2 * k])
        if k < n - 1:
            out.append(seps[k] + hidden[2 * k + 1])
    return number, "".join(out)


def _no_digit_or_at(ch: str) -> bool:
    folded = unicodedata.normalize("NFKC", ch)
    return not any(c.isdigit() or c == "@" for c in folded)


PROSE = st.text(
    st.characters(categories=["Lu", "Ll", "Lo", "Po", "Pd", "Ps", "Pe", "Zs"]).filter(
        _no_digit_or_at
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(card=disguised_cards(), before=PROSE, after=PROSE)
def test_finds_disguised_valid_card_embedded_in_text(
    card: tuple[str, str], before: str, after: str
) -> None:
    number, secret = card
    text = f"{before} {secret} {after}"
    cards = [f for f in find_private_data(text) if f.kind == "card"]
    assert len(cards) == 1
    folded, _ = normalise(text[cards[0].start : cards[0].end])
    assert re.sub(r"\D", "", folded) == number


_BRACKETED_AT = re.compile(r"[(\[{<]\s*at\s*[)\]}>]", re.IGNORECASE)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(categories=["L", "P", "Zs"]).filter(_no_digit_or_at), max_size=300)
)
def test_finds_nothing_in_text_without_digits_or_at_sign(text: str) -> None:
    assume(not _BRACKETED_AT.search(normalise(text)[0]))
    assert find_private_data(text) == []


SECRETS = st.one_of(
    card_numbers(),
    st.sampled_from(
        [
            "john@example.com",
            "a.b+c@mail.example.org",
            "x (at) y (dot) io",
            "+44 20 7946 0958",
            "(415) 555-2671",
            "415.555.2671",
            "4155552671",
            "06 12 34 56 78",
            "call 612 345 678",
        ]
    ),
)
NOISE = st.text(
    st.sampled_from([*"0123456789 -.+()@/:,#abcxyz", "\u200b", "\uff14", "\u00a0", "\u2013", "\n"]),
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(SECRETS, NOISE), max_size=8))
def test_redact_is_idempotent_and_leaves_nothing_detectable(pieces: list[str]) -> None:
    text = " ".join(pieces)
    once = redact(text)
    assert find_private_data(once) == []
    assert redact(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_finds_only_spans_inside_the_text(text: str) -> None:
    for finding in find_private_data(text):
        assert 0 <= finding.start < finding.end <= len(text)


# -- module hygiene ------------------------------------------------------------

STDLIB_ONLY = {"__future__", "re", "unicodedata", "collections.abc", "dataclasses", "functools"}


def test_detectors_import_only_the_standard_library() -> None:
    tree = ast.parse(Path(detectors.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= STDLIB_ONLY


def test_public_surface_is_pinned() -> None:
    assert sorted(detectors.__all__) == [
        "Finding",
        "KINDS",
        "find_private_data",
        "luhn_ok",
        "normalise",
        "redact",
        "scan_fields",
    ]
    assert detectors.KINDS == ("email", "phone", "card")


def test_scans_a_typical_sentence_quickly() -> None:
    sentence = (
        "The canary showed elevated error rates, so we rolled back and will retry "
        "tomorrow after the schema migration is verified and the dashboards reviewed. "
    )
    sentence = (sentence * 3)[:300]
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        find_private_data(sentence)
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 200e-6  # generous for loaded CI machines; ~3-5 us measured locally
