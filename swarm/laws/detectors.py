"""Private-data detectors: find emails, phone numbers and payment cards in text.

Pure functions, no I/O. Every detector reads ``normalise(text)`` rather than
the raw text, so the usual evasions do not work: zero-width and other
invisible characters are dropped, full-width and other-script digits become
ASCII digits, Unicode dashes become ``-`` and odd spaces become `` ``.
Offsets in a :class:`Finding` point into the *original* text.

A finding never carries the matched text, only its kind and where it is, so
it can be logged and shown to the writer without leaking the secret again.

Detection order matters: cards first, then emails, then phone numbers on a
copy of the text where cards, emails, dates, times and IP addresses are
masked, so a phone is never reported inside one of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "KINDS",
    "Finding",
    "find_private_data",
    "luhn_ok",
    "normalise",
    "redact",
    "scan_fields",
]

KINDS: tuple[str, ...] = ("email", "phone", "card")
"""The kinds this module detects, in the order reports list them."""

_LABELS = {
    "email": "email address",
    "phone": "phone number",
    "card": "payment card number",
    "ssn": "national id number",
    "iban": "bank account number (IBAN)",
    "api_key": "API key",
    "private_key": "private key",
    "password": "password",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of private data: what it is and where, never the text itself."""

    kind: str
    field: str
    start: int
    end: int

    def describe(self) -> str:
        """A human line such as ``email address in content at 12-31``."""
        label = _LABELS.get(self.kind, self.kind.replace("_", " "))
        return f"{label} in {self.field} at {self.start}-{self.end}"


# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------

_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
_EXTRA_DASHES = frozenset("\u02d7\u2043\u2212\u2500\u2501\u23af\u2796\u30fc\uff70")
_EXTRA_DOTS = frozenset("\u3002\uff61\u2024")
_DROP_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me"})
_TAG_FIRST, _TAG_LAST = 0xE0020, 0xE007E  # Unicode "tag" characters mirror printable ASCII
_NON_ASCII_SPLIT = re.compile(r"([^\x00-\x7f]+)")
_CACHED_RUN = 32  # longer runs are folded without the cache
_RUN_CACHE_SIZE = 8192
_RUN_CACHE: dict[str, tuple[str, tuple[int, ...] | None]] = {}


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """The replacement for one non-ASCII character ("" drops it)."""
    cp = ord(ch)
    if _TAG_FIRST <= cp <= _TAG_LAST:  # "ASCII smuggling" through invisible tag characters
        return chr(cp - 0xE0000)
    if ch in _INVISIBLE:
        return ""
    if ch in _EXTRA_DASHES:
        return "-"
    if ch in _EXTRA_DOTS:
        return "."
    category = unicodedata.category(ch)
    if category in _DROP_CATEGORIES:  # zero-width, bidi controls, soft hyphen, combining marks
        return ""
    if category == "Nd":  # any script's decimal digit
        return str(unicodedata.decimal(ch))
    if category[0] == "Z":  # NBSP, figure space, ideographic space, line separators...
        return " "
    if category == "Pd":
        return "-"
    folded = unicodedata.normalize("NFKC", ch)
    if folded == ch:
        return ch
    return "".join(c if c.isascii() else _fold_char(c) for c in folded)


def _fold_run(run: str) -> tuple[str, tuple[int, ...] | None]:
    """A run of non-ASCII characters folded, and each one's folded length (``None``: all 1)."""
    reps = [_fold_char(ch) for ch in run]
    lengths = tuple(len(rep) for rep in reps)
    return "".join(reps), None if all(n == 1 for n in lengths) else lengths


def _normalise(text: str) -> tuple[str, list[int] | None]:
    """Like :func:`normalise`, but the index is ``None`` when it is the identity."""
    if text.isascii():
        return text, None
    chunks = _NON_ASCII_SPLIT.split(text)  # ascii, non-ascii, ascii, ..., ascii
    resized: list[tuple[int, tuple[int, ...]]] = []  # runs whose folding changed their length
    pos = 0
    for k in range(1, len(chunks), 2):
        pos += len(chunks[k - 1])
        run = chunks[k]
        got = _RUN_CACHE.get(run)
        if got is None:
            got = _fold_run(run)
            if len(run) <= _CACHED_RUN and len(_RUN_CACHE) < _RUN_CACHE_SIZE:
                _RUN_CACHE[run] = got
        chunks[k] = got[0]
        if got[1] is not None:
            resized.append((pos, got[1]))
        pos += len(run)
    folded = "".join(chunks)
    if not resized:
        return folded, None
    index: list[int] = []
    pos = 0
    for start, lengths in resized:
        index.extend(range(pos, start))
        for k, n in enumerate(lengths):
            if n == 1:
                index.append(start + k)
            elif n:
                index.extend([start + k] * n)
        pos = start + len(lengths)
    index.extend(range(pos, len(text)))
    return folded, index


def normalise(text: str) -> tuple[str, list[int]]:
    """Fold ``text`` for detection and map each folded character back.

    NFKC-folds each character (full-width letters and digits become ASCII),
    turns any script's decimal digits into ASCII digits, drops zero-width,
    format, bidi-control and combining characters (and decodes invisible
    Unicode tag characters), and maps Unicode dashes to ``-`` and Unicode
    spaces to `` ``. Returns the folded text and, for each of its characters,
    the index of the original character it came from.
    """
    folded, index = _normalise(text)
    return folded, list(range(len(text))) if index is None else index


# --------------------------------------------------------------------------
# Cards
# --------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """Whether an ASCII digit string passes the Luhn (mod 10) check."""
    if len(digits) < 2 or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_lengths(digits: str) -> range | tuple[int, ...]:
    """The lengths a card with this IIN prefix can have (empty when the prefix is unknown)."""
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return (16,)  # Mastercard
    if p2 in (34, 37):
        return (15,)  # American Express
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649:
        return range(16, 20)  # Discover
    if 3528 <= p4 <= 3589:
        return range(16, 20)  # JCB
    if p2 in (36, 38) or 300 <= p3 <= 305:
        return range(14, 20)  # Diners Club
    if p2 == 62:
        return range(16, 20)  # UnionPay
    return ()


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and len(digits) in _card_lengths(digits) and luhn_ok(digits)


# A run of digits, each optionally preceded by one space or dash, not glued to a word.
_CARD_RUN = re.compile(r"\d(?<![^\W_]\d)(?:[ -]?\d){12,}(?![^\W_])")
_CARD_HINT = re.compile(r"\d[\d -]{11,}\d")  # cheap necessary condition for _CARD_RUN
_DIGIT_GROUP = re.compile(r"\d+")


def _find_cards(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if _CARD_HINT.search(text) is None:
        return spans
    for run in _CARD_RUN.finditer(text):
        groups = [
            (g.start() + run.start(), g.end() + run.start())
            for g in _DIGIT_GROUP.finditer(run.group())
        ]
        count = sum(e - s for s, e in groups)
        if count <= 19 and _is_card("".join(text[s:e] for s, e in groups)):
            spans.append((groups[0][0], groups[-1][1]))
            continue
        # A longer run (two cards, or a card beside another number): try windows
        # on group boundaries; several groups only when each looks like card grouping.
        i = 0
        while i < len(groups):
            best = 0
            digits = ""
            for j in range(i, len(groups)):
                s, e = groups[j]
                if j > i and (e - s < 3 or groups[i][1] - groups[i][0] < 3):
                    break
                digits += text[s:e]
                if len(digits) > 19:
                    break
                if _is_card(digits):
                    best = j + 1
            if best:
                spans.append((groups[i][0], groups[best - 1][1]))
                i = best
            else:
                i += 1
    return spans


# --------------------------------------------------------------------------
# Emails
# --------------------------------------------------------------------------

_LOCAL = r"(?<![\w.%+&-])\w[\w.%+&'-]{0,63}"
_DOMAIN_TAIL = r"[^\W\d_]{2,63}(?![\w-])"
_EMAIL = re.compile(_LOCAL + r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}" + _DOMAIN_TAIL)
_BRACKET_AT = r"[(\[{<]\s{0,3}at\s{0,3}[)\]}>]"
_BRACKET_DOT = r"[(\[{<]\s{0,3}dot\s{0,3}[)\]}>]"
_EMAIL_OBFUSCATED = re.compile(
    _LOCAL
    + rf"\s{{0,3}}{_BRACKET_AT}\s{{0,3}}"
    + rf"(?:[^\W_][\w-]{{0,62}}(?:\s{{0,3}}{_BRACKET_DOT}\s{{0,3}}|\.)){{1,8}}"
    + _DOMAIN_TAIL,
    re.IGNORECASE,
)
_OBFUSCATED_HINT = re.compile(_BRACKET_AT, re.IGNORECASE)
_SCALE_SUFFIX = re.compile(r"\d+(?:\.\d+)?x\.")


def _find_emails(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if "@" in text:
        for m in _EMAIL.finditer(text):
            local, domain = m.group().split("@", 1)
            if local == "git" and text.startswith(":", m.end()):  # git@host:org/repo SSH remote
                continue
            if _SCALE_SUFFIX.match(domain):  # icon@2x.png, logo@1.5x.webp
                continue
            spans.append(m.span())
    if _OBFUSCATED_HINT.search(text):
        spans.extend(m.span() for m in _EMAIL_OBFUSCATED.finditer(text))
    return spans


# --------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------

# Spans that are never (part of) a phone number: dates, times, IPv4 addresses.
_NOT_PHONE = re.compile(
    r"(?<![\d.\-/])(?:1[89]|2[01])\d\d(?P<a>[-/.])(?:0?[1-9]|1[0-2])(?P=a)"
    r"(?:0?[1-9]|[12]\d|3[01])(?!\d|[-/.]\d)"
    r"|(?<![\d.\-/])(?:0?[1-9]|[12]\d|3[01])(?P<b>[-/.])(?:0?[1-9]|[12]\d|3[01])(?P=b)"
    r"(?:(?:1[89]|2[01])\d\d|\d\d)(?!\d|[-/.]\d)"
    r"|(?<!\d)(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[.,]\d{1,9})?(?!\d)"
    r"|(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)"
)
_GROUP = r"(?:\(\d{1,6}\)|\d+)"
_SEP = r"(?:[ ]?[-./][ ]?|[ ])"
_PHONE_TOKEN = re.compile(rf"(?:\+[ ]?)?{_GROUP}(?:{_SEP}{_GROUP}|(?<=\))\d+|\(\d{{1,6}}\))*")
# Seven digits, each within a few separator characters of the next (a token's digits always are).
_SEVEN_DIGITS = re.compile(r"\d(?:[ ()./-]{0,5}\d){6}")
_TOKEN_PART = re.compile(r"\(?(\d+)\)?")
_PHONE_WORDS = re.compile(
    r"\b(?:phone|phones|ph|tel|tele|telephone|mobile|mob|cell|cellphone|call|calls|fax|"
    r"whatsapp|signal|sms|text|txt|ring|dial|contact|reach|hotline|landline)\b"
)
_NOT_PHONE_WORDS = re.compile(
    r"\b(?:order|invoice|inv|id|ref|reference|ticket|tracking|transaction|txn|sku|isbn|"
    r"issn|ean|upc|gtin|doi|build|version|ver|commit|pid|uid|port|serial|account|acct|"
    r"iban|case|issue|pr|job|batch|lot|zip|postcode|amount|total|price|cost|balance|usd|sn|"
    r"license|licence|key|imei|model|part|"
    r"eur|gbp|seed|hash|checksum|timestamp|epoch|ts|nonce|offset|size|bytes)\b"
)
_MIN_DIGITS = 7  # below this a text holds no phone number and no card
_MAX_PHONE_DIGITS = 15  # E.164
_MASK_MARGIN = 3
_CONTEXT_CHARS = 40
_MAX_WINDOW_GROUPS = 8
_MAX_TOKEN_GROUPS = 64
_GLUE_BEFORE = frozenset("@#$€£¥₹_&")
_GLUE_AFTER = frozenset("@%_")
_NUMBER_JOINERS = frozenset("-./:,")


def _mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with each span overwritten by ``x`` (same length, so offsets hold)."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for span_start, end in sorted(spans):
        start = max(span_start, pos)
        if end <= start:
            continue
        parts.append(text[pos:start])
        parts.append("x" * (end - start))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _context(text: str, start: int) -> int:
    """+1 when a phone word is the nearest cue before ``start``, -1 for an id/amount word."""
    window = text[max(0, start - _CONTEXT_CHARS) : start].lower()
    pos_cue = max((m.end() for m in _PHONE_WORDS.finditer(window)), default=-1)
    neg_cue = max((m.end() for m in _NOT_PHONE_WORDS.finditer(window)), default=-1)
    if pos_cue == neg_cue:
        return 0
    return 1 if pos_cue > neg_cue else -1


def _is_date(groups: Sequence[str]) -> bool:
    lens = [len(g) for g in groups]
    if lens == [2, 2, 4]:
        day, month, year = (int(g) for g in groups)
    elif lens == [4, 2, 2]:
        year, month, day = (int(g) for g in groups)
    else:
        return False
    small, big = sorted((day, month))
    return 1800 <= year <= 2199 and 1 <= small <= 12 and 1 <= big <= 31


def _contiguous_ok(digits: str) -> bool:
    n = len(digits)
    if n < 10 or len(set(digits)) == 1:
        return False
    if digits[0] == "1" and n in (10, 13):  # Unix time in s / ms (NANP numbers never start with 1)
        return False
    if n in (12, 14) and re.fullmatch(
        r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
        r"(?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?",
        digits,
    ):
        return False  # compact date-time
    return not (n == 13 and digits[:3] in ("978", "979"))  # ISBN-13 / bookland EAN


def _phone_shape_ok(
    groups: Sequence[str], seps: Sequence[str], parens: Sequence[bool], plus: bool, context: int
) -> bool:
    """Whether digit groups joined by separators read as a phone number."""
    digits = "".join(groups)
    n = len(digits)
    if not _MIN_DIGITS <= n <= _MAX_PHONE_DIGITS:
        return False
    decimal = len(groups) == 2 and seps == ["."]
    if plus or context > 0:
        return not decimal
    if context < 0:
        return False
    if len(groups) == 1:
        return _contiguous_ok(digits)
    return _grouped_ok(groups, seps, parens)


def _grouped_ok(groups: Sequence[str], seps: Sequence[str], parens: Sequence[bool]) -> bool:
    """The shape rules for a separated number with no ``+`` and no phone word before it."""
    digits = "".join(groups)
    n = len(digits)
    lens = [len(g) for g in groups]
    if max(lens) > 8 or any(length == 1 for length in lens[1:]) or len(set(digits)) == 1:
        return False
    # Separators beside a parenthesised group are free; the rest must agree after the first.
    core = [s for k, s in enumerate(seps) if not (parens[k] or parens[k + 1])]
    if len(set(core[1:])) > 1:
        return False
    if "/" in core:
        return len(groups) == 2 and groups[0][0] == "0"
    if core and set(core) == {"."} and not any(parens):
        return len(groups) >= 3 and min(lens) >= 2 and (lens == [3, 3, 4] or groups[0][0] == "0")
    if all(length == 4 and 1800 <= int(g) <= 2199 for g, length in zip(groups, lens, strict=True)):
        return False  # years
    if sum(g.endswith("00") for g in groups) >= 2:
        return False  # round amounts
    if any(parens):
        return True
    if groups[0][0] != "0" and (max(lens) <= 2 or (lens[0] <= 3 and set(lens[1:]) == {3})):
        return False  # 12 34 56 78 pairs without a trunk 0; 1 234 567 thousands grouping
    if len(groups) == 3 and _is_date(groups):
        return False
    if len(groups) == 2:
        return n >= 8 or (lens == [3, 4] and groups[0][0] in "23456789")
    return True


def _window_free(text: str, start: int, end: int, plus: bool) -> bool:
    """Whether ``text[start:end]`` stands alone, not glued to a word, id or bigger number."""
    if start > 0:
        before = text[start - 1]
        if before.isalnum() or before in _GLUE_BEFORE:
            return False
        if not plus and before in _NUMBER_JOINERS and start > 1 and text[start - 2].isalnum():
            return False
    if end < len(text):
        after = text[end]
        if after.isalnum() or after in _GLUE_AFTER:
            return False
        if after in _NUMBER_JOINERS and end + 1 < len(text) and text[end + 1].isdigit():
            return False
    return True


def _find_phones(text: str, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    masked = _mask(text, taken)
    spans: list[tuple[int, int]] = []
    pos = 0
    # Only runs with seven digits close together can hold a phone: jump from one to the next.
    while (cluster := _SEVEN_DIGITS.search(masked, pos)) is not None:
        for token in _PHONE_TOKEN.finditer(masked, max(pos, cluster.start() - _MASK_MARGIN)):
            if token.end() > cluster.start():
                break
        else:  # pragma: no cover - the cluster's first digit always starts or sits in a token
            break
        pos = token.end()
        # Mask dates, times and IP addresses around the token, then read what is left.
        lo, hi = max(0, token.start() - _MASK_MARGIN), min(len(masked), pos + _MASK_MARGIN)
        local = _NOT_PHONE.sub(lambda m: "x" * (m.end() - m.start()), masked[lo:hi])
        if local == masked[lo:hi]:
            spans.extend(_phones_in_token(token, masked, 0, text))
        else:
            for sub in _PHONE_TOKEN.finditer(local):
                if sub.end() - sub.start() >= _MIN_DIGITS:
                    spans.extend(_phones_in_token(sub, local, lo, text))
    return spans


def _cut_ok(groups: Sequence[str], seps: Sequence[str], i: int, j: int) -> bool:
    """Whether groups ``[i, j)`` may be read apart from their neighbours in the run.

    Not when a neighbour of three or more digits is joined by the window's own
    separator: ``4111 1111 1111 1112`` is one number, not a phone plus ``1112``.
    """
    inner = set(seps[i : j - 1])
    if i > 0 and seps[i - 1] in inner and len(groups[i - 1]) >= 3:
        return False
    return not (j < len(groups) and seps[j - 1] in inner and len(groups[j]) >= 3)


def _phones_in_token(
    token: re.Match[str], masked: str, offset: int, text: str
) -> list[tuple[int, int]]:
    """Phones in one digit-group run of ``masked`` (``masked[0]`` is ``text[offset]``)."""
    plus = token.group().startswith("+")
    base = token.start()
    parts = list(_TOKEN_PART.finditer(token.group()))
    groups = [p.group(1) for p in parts]
    ends = [0]  # ends[k]: digits in groups[:k]
    for g in groups:
        ends.append(ends[-1] + len(g))
    if ends[-1] < _MIN_DIGITS:
        return []
    parens = [p.group().startswith("(") for p in parts]
    bounds = [(p.start() + base, p.end() + base) for p in parts]
    seps = [
        masked[bounds[k][1] : bounds[k + 1][0]].strip()
        or (" " if bounds[k][1] < bounds[k + 1][0] else "")
        for k in range(len(parts) - 1)
    ]
    spans: list[tuple[int, int]] = []
    if len(parts) > _MAX_TOKEN_GROUPS:  # a table of numbers, not a phone number
        return spans
    i = 0
    while i < len(parts):
        context: int | None = None
        for j in range(min(len(parts), i + _MAX_WINDOW_GROUPS), i, -1):
            if not _MIN_DIGITS <= ends[j] - ends[i] <= _MAX_PHONE_DIGITS:
                continue
            if not _cut_ok(groups, seps, i, j):
                continue
            lead = plus and i == 0
            start = base if lead else bounds[i][0]
            end = bounds[j - 1][1]
            if not _window_free(masked, start, end, lead):
                continue
            if context is None:
                context = _context(text, start + offset)
            if _phone_shape_ok(groups[i:j], seps[i : j - 1], parens[i:j], lead, context):
                spans.append((start + offset, end + offset))
                i = j
                break
        else:
            i += 1
    return spans


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

_DIGITS = "0123456789"
_MIN_CARD_DIGITS = 13


def _resolve_kinds(kinds: Collection[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(KINDS)
    wanted = frozenset(kinds)
    unknown = wanted.difference(KINDS)
    if unknown:
        raise ValueError(f"unknown private-data kinds: {sorted(unknown)}; known: {list(KINDS)}")
    return wanted


def _detect(text: str, wanted: frozenset[str]) -> list[tuple[str, int, int]]:
    """Findings as ``(kind, start, end)`` in offsets of the (already normalised) ``text``."""
    found: list[tuple[str, int, int]] = []
    digit_count = sum(map(text.count, _DIGITS))
    enough_digits = digit_count >= _MIN_DIGITS
    cards = _find_cards(text) if enough_digits and digit_count >= _MIN_CARD_DIGITS else []
    emails: list[tuple[int, int]] = []
    if "email" in wanted or ("phone" in wanted and enough_digits):
        emails = _find_emails(text)
    if "card" in wanted:
        found.extend(("card", s, e) for s, e in cards)
    if "email" in wanted:
        found.extend(("email", s, e) for s, e in emails)
    if "phone" in wanted and enough_digits:
        found.extend(("phone", s, e) for s, e in _find_phones(text, cards + emails))
    found.sort(key=lambda f: (f[1], f[2]))
    return found


def find_private_data(
    text: str, *, field: str = "content", kinds: Collection[str] | None = None
) -> list[Finding]:
    """Every email, phone number and payment card in ``text``, in order of position.

    ``kinds`` restricts the search (default: all of :data:`KINDS`); an unknown
    kind is a ``ValueError``. Offsets point into ``text`` as given.
    """
    wanted = _resolve_kinds(kinds)
    folded, index = _normalise(text)
    findings: list[Finding] = []
    for kind, start, end in _detect(folded, wanted):
        if index is None:
            findings.append(Finding(kind, field, start, end))
        else:
            findings.append(Finding(kind, field, index[start], index[end - 1] + 1))
    return findings


_PAIR_WINDOW = 256  # characters read on each side of a join between two fields


def _may_hold_secret(text: str) -> bool:
    """A cheap necessary condition for any finding in ``text``."""
    folded, _ = _normalise(text)
    return (
        "@" in folded
        or sum(map(folded.count, _DIGITS)) >= _MIN_DIGITS
        or _OBFUSCATED_HINT.search(folded) is not None
    )


def scan_fields(fields: Mapping[str, str | Sequence[str]]) -> list[Finding]:
    """Scan each field, then the fields joined, so a secret split between fields is caught.

    A list field (e.g. tags) is read as its items joined by one space, and its
    offsets point into that string. Then the non-empty fields are read joined
    by one space, in mapping order, and every other ordered pair of fields is
    read across its join. A finding that crosses a field boundary is reported
    with ``field`` naming the fields it spans joined by ``+`` (e.g.
    ``"content+tags"``) and offsets into those fields' texts joined by one
    space in that order.
    """
    texts = [
        (name, value if isinstance(value, str) else " ".join(value))
        for name, value in fields.items()
    ]
    findings: list[Finding] = []
    for name, text in texts:
        findings.extend(find_private_data(text, field=name))
    parts = [(name, text) for name, text in texts if text]
    if len(parts) < 2 or not _may_hold_secret(" ".join(text for _, text in parts)):
        return findings
    seen = set(findings)

    def add(finding: Finding) -> None:
        if finding not in seen and not any(
            g.field == finding.field
            and g.kind == finding.kind
            and g.start < finding.end
            and finding.start < g.end
            for g in findings
        ):
            seen.add(finding)
            findings.append(finding)

    # All fields in order: catches a secret spread over neighbouring fields.
    segments: list[tuple[str, int, int]] = []
    pos = 0
    for name, text in parts:
        segments.append((name, pos, pos + len(text)))
        pos += len(text) + 1
    joined = " ".join(text for _, text in parts)
    for f in find_private_data(joined):
        touched = [(name, s) for name, s, e in segments if s < f.end and f.start < e]
        offset = touched[0][1]
        field = "+".join(name for name, _ in touched)
        add(Finding(f.kind, field, f.start - offset, f.end - offset))
    # Every other ordered pair, read across its join (only the text near the join).
    for a, (name_a, text_a) in enumerate(parts):
        for b, (name_b, text_b) in enumerate(parts):
            if a == b or b == a + 1:
                continue
            left, right = text_a[-_PAIR_WINDOW:], text_b[:_PAIR_WINDOW]
            shift = len(text_a) - len(left)
            for f in find_private_data(left + " " + right):
                if f.start < len(left) < f.end - 1:
                    add(Finding(f.kind, f"{name_a}+{name_b}", f.start + shift, f.end + shift))
    return findings


_MAX_REDACT_PASSES = 8


def redact(text: str, kinds: Collection[str] | None = None) -> str:
    """``text`` with each finding replaced by ``[REDACTED:<kind>]``.

    Repeats until nothing is found (a redaction can change what its
    neighbours look like), so ``find_private_data(redact(x))`` is empty.
    """
    for _ in range(_MAX_REDACT_PASSES):
        findings = find_private_data(text, kinds=kinds)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for f in findings:
            if f.start < pos:
                continue
            parts.append(text[pos : f.start])
            parts.append(f"[REDACTED:{f.kind}]")
            pos = f.end
        parts.append(text[pos:])
        text = "".join(parts)
    return text
