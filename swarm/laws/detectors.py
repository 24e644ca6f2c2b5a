"""Private-data detectors: find emails, phones, cards, SSNs, IBANs, keys and passwords.

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

The later kinds (US social security numbers, IBANs, API keys and tokens,
private key blocks, passwords) each sit behind a cheap pre-filter and never
mask or remove an email, phone or card finding: a caller that keeps only those
three kinds (the private-data law) sees exactly what it saw before. So an SSN
written ``123-45-6789`` is reported as both ``ssn`` and ``phone``; :func:`redact`
labels such a span with the more specific kind. Among the later kinds, whatever
lies inside a private key block is part of the block, and a password whose value
is itself a token, card, IBAN or SSN is reported as that instead.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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

KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "card",
    "ssn",
    "iban",
    "api_key",
    "private_key",
    "password",
)
"""The kinds this module detects."""

_LABELS = {
    "email": "email address",
    "phone": "phone number",
    "card": "payment card number",
    "ssn": "US social security number",
    "iban": "IBAN",
    "api_key": "API key or token",
    "private_key": "private key block",
    "password": "password",
}
# Which finding a redaction keeps when two start at the same place: the most specific.
_RANK = {
    kind: rank
    for rank, kind in enumerate(
        ("private_key", "api_key", "iban", "card", "ssn", "email", "password", "phone")
    )
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
# US social security numbers
# --------------------------------------------------------------------------

# AAA-GG-SSSS with dashes or spaces, not part of a longer number or word. (Each pattern
# starts with a digit so the scan skips digit-free text quickly; the look-behinds after it
# check what precedes the number.)
_SSN_START = r"(?P<area>\d(?<![\w+.-]\d)(?<!\d[ .-]\d)\d\d)"
_SSN_GROUPED = re.compile(
    _SSN_START + r"[ -](?P<group>\d\d)[ -](?P<serial>\d{4})(?![\w]|[ .-]?\d|-\w)"
)
_SSN_CONTIGUOUS = re.compile(_SSN_START + r"(?P<group>\d\d)(?P<serial>\d{4})(?![\w]|[ .-]?\d)")
_SSN_CONTEXT = re.compile(r"(?<![a-z])(?:ssns?|social[ -]?security|soc\.? ?sec)(?![a-z])")
_SSN_CONTEXT_CHARS = 20  # a context word must end at most this far before the number
_SSN_NEVER_ISSUED = frozenset({"078051120", "219099999"})  # wallet-card and ad specimens


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA rules: no area 000, 666 or 9xx, no group 00, no serial 0000."""
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and area + group + serial not in _SSN_NEVER_ISSUED
    )


def _find_ssns(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _SSN_GROUPED.finditer(text) if _ssn_ok(*m.groups())]
    lower = text.lower()
    if "ssn" not in lower and "soc" not in lower:
        return spans  # nine bare digits count only after a context word
    for m in _SSN_CONTIGUOUS.finditer(text):
        if not _ssn_ok(*m.groups()):
            continue
        window = text[max(0, m.start() - _SSN_CONTEXT_CHARS - 16) : m.start()].lower()
        if any(c.end() >= len(window) - _SSN_CONTEXT_CHARS for c in _SSN_CONTEXT.finditer(window)):
            spans.append(m.span())
    return spans


# --------------------------------------------------------------------------
# IBANs
# --------------------------------------------------------------------------

# Lengths from the ISO 13616 IBAN registry.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
# Country, check digits, then up to 30 letters/digits, each optionally after one space.
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d\d)((?:[ ]?[A-Za-z0-9]){11,30})")
# Where an IBAN may start: two digits after two letters (digits first, for a fast scan).
_IBAN_ANCHOR = re.compile(r"\d(?<=[A-Za-z]{2}\d)\d")
_MIN_IBAN_DIGITS = 8  # every registered BBAN holds more digits than this


def _iban_ok(iban: str) -> bool:
    """Whether a compact IBAN has its country's length and passes the mod-97 check."""
    iban = iban.upper()
    if not (iban.isascii() and iban.isalnum()) or len(iban) != _IBAN_LENGTHS.get(iban[:2]):
        return False
    if not (iban[2:4].isdigit() and "02" <= iban[2:4] <= "98"):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _find_ibans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (anchor := _IBAN_ANCHOR.search(text, pos)) is not None:
        pos = anchor.end()
        m = _IBAN.match(text, anchor.start() - 2)
        if m is None:
            continue
        length = _IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        # Take exactly the country's length of characters; the IBAN must end there.
        need, end = length - 4, m.start(3)
        chars: list[str] = []
        while len(chars) < need and end < m.end():
            if text[end] != " ":
                chars.append(text[end])
            end += 1
        if len(chars) < need or (end < len(text) and text[end].isalnum()):
            continue
        if _iban_ok(m.group(1) + m.group(2) + "".join(chars)):
            spans.append((m.start(), end))
            pos = end
    return spans


# --------------------------------------------------------------------------
# API keys and tokens
# --------------------------------------------------------------------------

_B62 = "A-Za-z0-9"


def _no_specimen(secret: str) -> bool:
    return "EXAMPLE" not in secret  # AKIAIOSFODNN7EXAMPLE and friends from the AWS docs


def _mixed(secret: str) -> bool:
    """Letters and digits both: a random token, not a word or a slug."""
    return any(c.isdigit() for c in secret) and any(c.isalpha() for c in secret)


def _random_case(secret: str) -> bool:
    """Digits, capitals and small letters in the tail after the last known prefix."""
    tail = secret.removeprefix("sk-").removeprefix("ant-").removeprefix("proj-")
    return _mixed(tail) and any(c.isupper() for c in tail) and any(c.islower() for c in tail)


_MAX_JWT_HEADER = 2048


def _jwt_header_ok(token: str) -> bool:
    """Whether the first dot-separated segment decodes to a JSON object naming an ``alg``."""
    segment = token.split(".", 1)[0][:_MAX_JWT_HEADER]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):  # binascii.Error and JSONDecodeError are ValueErrors
        return False
    return isinstance(header, dict) and "alg" in header


# (a character every hint holds; hints, one of which must occur in the text; pattern;
# the group holding the secret; a check on it)
_TOKEN_PATTERNS: tuple[
    tuple[str, tuple[str, ...], re.Pattern[str], int, Callable[[str], bool] | None], ...
] = (
    (
        "A",
        ("AKIA", "ASIA"),
        re.compile(rf"A(?:KIA|SIA)(?<![{_B62}]....)[A-Z0-9]{{16}}(?![{_B62}])"),
        0,
        _no_specimen,
    ),
    (
        "",
        ("ccess_key", "ccessKey", "ccesskey", "ccess_Key", "CCESS_KEY", "CCESSKEY"),
        re.compile(
            r"[Ss][Ee][Cc][Rr][Ee][Tt]_?[Aa][Cc][Cc][Ee][Ss][Ss]_?[Kk][Ee][Yy]"
            r"[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
        _no_specimen,
    ),
    (
        "_",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(rf"gh[pousr]_(?<![{_B62}_]....)[{_B62}]{{36}}(?![{_B62}_])"),
        0,
        None,
    ),
    (
        "_",
        ("github_pat_",),
        re.compile(r"github_pat_(?<!\w.{11})\w{70,100}(?!\w)", re.ASCII),
        0,
        None,
    ),
    (
        "-",
        ("sk-",),
        re.compile(
            rf"sk-(?<![{_B62}_-]...)(?:ant-[{_B62}_-]{{32,}}|(?:proj|svcacct|admin)-[{_B62}_-]{{40,}}"
            rf"|[{_B62}]{{32,}})(?![{_B62}_-])"
        ),
        0,
        _random_case,
    ),
    (
        "-",
        ("xox", "xapp-"),
        re.compile(rf"x(?:ox[abprs]|app)-(?<![{_B62}].{{5}})[{_B62}-]{{20,}}"),
        0,
        _mixed,
    ),
    (
        "A",
        ("AIza",),
        re.compile(rf"AIza(?<![{_B62}_-]....)[{_B62}_-]{{35}}(?![{_B62}_-])"),
        0,
        None,
    ),
    (
        "_",
        ("_live_",),
        re.compile(rf"[rs]k_live_(?<![{_B62}_]........)[{_B62}]{{24,}}(?![{_B62}])"),
        0,
        None,
    ),
    (
        "J",
        ("eyJ",),
        re.compile(r"eyJ(?<![\w-]...)[\w-]{5,}\.[\w-]{2,}\.[\w-]*", re.ASCII),
        0,
        _jwt_header_ok,
    ),
    (
        "",
        ("earer", "EARER"),
        re.compile(r"[Bb](?:earer|EARER)(?<![A-Za-z0-9].{6})[ \t]+([A-Za-z0-9._~+/-]{40,}=*)"),
        1,
        _mixed,
    ),
)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans joined into one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# Patterns grouped by that character, so text without it skips their hints all at once.
_TOKEN_GATES: tuple[tuple[str, tuple[tuple[int, tuple[str, ...]], ...]], ...] = tuple(
    (gate, tuple((k, p[1]) for k, p in enumerate(_TOKEN_PATTERNS) if p[0] == gate))
    for gate in dict.fromkeys(p[0] for p in _TOKEN_PATTERNS)
)
_MIN_TOKEN = 12  # the shortest token any pattern matches (a JWT without a signature)


def _token_patterns(text: str) -> list[int]:
    """Which of :data:`_TOKEN_PATTERNS` have a hint in ``text``."""
    found: list[int] = []
    if len(text) < _MIN_TOKEN:
        return found
    for gate, patterns in _TOKEN_GATES:
        if gate in text:
            for k, hints in patterns:
                for hint in hints:
                    if hint in text:
                        found.append(k)
                        break
    return found


def _may_hold_token(text: str) -> bool:
    return bool(_token_patterns(text))


def _find_api_keys(text: str, ks: Sequence[int]) -> list[tuple[int, int]]:
    """Tokens in ``text`` matched by the patterns ``ks`` (from :func:`_token_patterns`)."""
    spans: list[tuple[int, int]] = []
    for k in ks:
        _, _, pattern, group, check = _TOKEN_PATTERNS[k]
        spans.extend(
            m.span(group) for m in pattern.finditer(text) if check is None or check(m.group(group))
        )
    return _merge(spans)


# --------------------------------------------------------------------------
# Private key blocks
# --------------------------------------------------------------------------

_PEM_BEGIN = re.compile(r"-{3,}[ \t]*BEGIN (?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?-*")
# Base64 lines (after real or escaped newlines, or after a space when the run is long
# or padded, as in a key pasted onto one line) and the headers of an encrypted key.
_PEM_NEWLINE = r"(?:[ \t]*+(?:\r?\n|\\r\\n|\\n))"
_PEM_BODY = re.compile(
    rf"(?:{_PEM_NEWLINE}++[ \t]*+(?:(?:Proc-Type|DEK-Info|Comment):[^\r\n\\]*+|[A-Za-z0-9+/=]++)"
    r"|[ \t]++(?:[A-Za-z0-9+/]{16,}+=*+|[A-Za-z0-9+/]++=++))*+"
)
_PEM_END = re.compile(r"(?:\s|\\[rn])*+-{3,}[ \t]*END (?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?-*")
_PEM_MIN_BODY = 20  # base64 characters: fewer is an example header, not a key
_BASE64_CHAR = re.compile(r"[A-Za-z0-9+/]")


def _find_private_keys(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        body = _PEM_BODY.match(text, begin.end())
        pos = body.end() if body is not None else begin.end()
        if body is None or len(_BASE64_CHAR.findall(body.group())) < _PEM_MIN_BODY:
            continue
        end = _PEM_END.match(text, pos)
        if end is not None:
            pos = end.end()
        spans.append((begin.start(), pos))
    return spans


# --------------------------------------------------------------------------
# Passwords
# --------------------------------------------------------------------------

_STRONG_KEYS = frozenset(
    {"password", "passwd", "pwd", "secretkey", "apikey", "accesstoken", "clientsecret", "authtoken"}
)
# Passwords are found from their separator: most text has few ``=`` and ``:``. The key
# must end just before it (then an optional quote and spaces).
_PASSWORD_SEP = re.compile(r"[:=]")
_PASSWORD_KEYS = tuple(
    sorted(
        {
            f"{head}{joint}{tail}"
            for head, tail in (
                ("secret", "key"),
                ("api", "key"),
                ("access", "token"),
                ("client", "secret"),
                ("auth", "token"),
            )
            for joint in ("_", "-", "")
        }
        | {"password", "passwd", "pwd", "pass", "secret", "token"},
        key=len,
        reverse=True,
    )
)
_KEY_LAST_LETTERS = frozenset("dstynDSTYN")
# A value runs to a space or quote, or to a ``,``, ``;`` or ``&`` that ends a phrase or
# starts the next ``key=`` (``user=bob,pwd=x``, ``?pwd=x&user=y``).
_PASSWORD_VALUE = re.compile(
    r"(?P<sep>:=|=>|==?|:)[ \t]*"
    r"(?:(?P<q>[\"'`])(?P<qv>(?:(?!(?P=q))[^\r\n]){1,256})(?P=q)|[\"'`]?(?P<v>(?:[^\s\"'`,;&]|[,;&](?![\s,;&]|[\w.-]+[=:]|$)){1,256}))"
)
_URL_CREDENTIALS = re.compile(
    r"://(?P<user>[^\s/?#@:\[\]]{0,128}):(?P<pw>[^\s/?#@]{1,128})@(?=[A-Za-z0-9\[])"
)
_TRAILING_PUNCTUATION = ".!?:)]}>"
_COUNT_PREFIXES = tuple(
    f"{word}{joint}"
    for word in ("max", "min", "num", "total", "input", "output", "prompt", "completion")
    for joint in "_-"
)
_PLACEHOLDER_WORDS = frozenset(
    {
        "redacted", "removed", "hidden", "masked", "censored", "omitted", "none", "null", "nil",
        "undefined", "empty", "true", "false", "required", "optional", "string", "str",
        "placeholder", "tbd", "todo", "password", "passwd", "pass", "pwd", "secret", "token",
    }
)  # fmt: skip
_PLACEHOLDER_CHARS = frozenset("*xX\u2022\u00b7.#-_?")
_ENV_REFERENCE = re.compile(r"\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\{\{.*\}\}|%\(\w+\)s|\$\(.*\)")
_CODE_REFERENCE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[A-Za-z_]\w*)+|[A-Za-z_][\w.]*[(\[].*")


def _placeholder(value: str) -> bool:
    """An obvious stand-in (``***``, ``<redacted>``, ``${VAR}``, ``[REDACTED:x]``), not a secret."""
    return (
        value.startswith(("[REDACTED", "<"))
        or set(value) <= _PLACEHOLDER_CHARS
        or value.lower().strip("_-") in _PLACEHOLDER_WORDS
        or _ENV_REFERENCE.fullmatch(value) is not None
    )


def _key_starts_word(text: str, start: int) -> bool:
    """Whether a key at ``start`` begins a word, a ``snake_case`` part or a ``camelCase`` part."""
    if start == 0:
        return True
    before = text[start - 1]
    if not (before.isascii() and before.isalnum()):
        return True
    return (before.islower() or before.isdigit()) and text[start].isupper()


def _password_value(key: str, m: re.Match[str], text: str) -> tuple[int, int] | None:
    """The span of the secret after ``key`` and a separator, or ``None`` when it is none."""
    quoted = m.group("q") is not None
    group = "qv" if quoted else "v"
    start = m.start(group)
    value = m.group(group)
    if not quoted:
        if _placeholder(value) or _CODE_REFERENCE.fullmatch(value):
            return None  # ${DB_PASSWORD}, self.password, os.environ[...], getpass()
        value = value.rstrip(_TRAILING_PUNCTUATION)
    if len(value.replace(" ", "")) < 4 or _placeholder(value.strip()):
        return None
    # "Token: expired", "pass: 120/130": prose, unless the value mixes letters and more.
    prose_like = value.isalpha() or not any(c.isalpha() for c in value)
    if prose_like and key not in _STRONG_KEYS and m.group("sep") == ":" and not quoted:
        return None
    if key == "pwd" and value.startswith(("/", "~")):  # the shell's working directory
        return None
    return start, start + len(value)


def _password_keys(text: str) -> Iterator[tuple[str, int]]:
    """Each credential key followed by a separator: the key (lower case, no ``_`` or ``-``)
    and where its separator is."""
    for sep in _PASSWORD_SEP.finditer(text):
        at = key_end = sep.start()
        while key_end > 0 and text[key_end - 1] in " \t":
            key_end -= 1
        if key_end > 0 and text[key_end - 1] in "\"'":
            key_end -= 1
        if key_end == 0 or text[key_end - 1] not in _KEY_LAST_LETTERS:
            continue
        window = text[max(0, key_end - 14) : key_end].lower()
        if not window.endswith(_PASSWORD_KEYS):
            continue
        found = next(k for k in _PASSWORD_KEYS if window.endswith(k))
        key_start = key_end - len(found)
        if not _key_starts_word(text, key_start):
            continue
        key = found.replace("_", "").replace("-", "")
        if key == "token" and text[max(0, key_start - 12) : key_start].lower().endswith(
            _COUNT_PREFIXES
        ):
            continue  # max_tokens: 4096 is a count
        yield key, at


def _may_hold_password(text: str) -> bool:
    return "://" in text or next(_password_keys(text), None) is not None


def _find_passwords(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for key, at in _password_keys(text):
        value = _PASSWORD_VALUE.match(text, at)
        span = None if value is None else _password_value(key, value, text)
        if span is not None:
            spans.append(span)
    if "://" in text:
        for m in _URL_CREDENTIALS.finditer(text):
            if not _placeholder(m.group("pw")):
                spans.append((m.start("user"), m.end("pw")))
    return _merge(spans)


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
    # The newer kinds never mask the three above, so a caller filtering on those
    # (the private-data law) sees exactly what it saw before they existed.
    if not wanted <= _FIRST_KINDS:
        found.extend(_detect_more(text, wanted, digit_count, cards))
    found.sort(key=lambda f: (f[1], f[2], _RANK[f[0]]))
    return found


_FIRST_KINDS = frozenset({"email", "phone", "card"})
_PASSWORD_YIELDS_TO = frozenset({"private_key", "api_key", "iban", "card", "ssn"})


def _detect_more(
    text: str, wanted: frozenset[str], digit_count: int, cards: Sequence[tuple[int, int]]
) -> list[tuple[str, int, int]]:
    """SSNs, IBANs, API keys, private keys and passwords, each behind a cheap pre-filter."""
    more: list[tuple[str, int, int]] = []
    if "ssn" in wanted and digit_count >= 9:
        more.extend(("ssn", s, e) for s, e in _find_ssns(text))
    if "iban" in wanted and digit_count >= _MIN_IBAN_DIGITS:
        more.extend(("iban", s, e) for s, e in _find_ibans(text))
    if "api_key" in wanted and (ks := _token_patterns(text)):
        more.extend(("api_key", s, e) for s, e in _find_api_keys(text, ks))
    if "password" in wanted and ("=" in text or ":" in text):
        more.extend(("password", s, e) for s, e in _find_passwords(text))
    keys = _find_private_keys(text) if "PRIVATE KEY" in text else []
    if keys:  # whatever sits inside a key block is part of the key
        more = [f for f in more if not any(s <= f[1] and f[2] <= e for s, e in keys)]
        if "private_key" in wanted:
            more.extend(("private_key", s, e) for s, e in keys)
    if "password" in wanted:  # a value that is a token, a card... is reported as that
        taken = [f for f in more if f[0] in _PASSWORD_YIELDS_TO]
        if "card" in wanted:
            taken.extend(("card", s, e) for s, e in cards)
        more = [
            f
            for f in more
            if f[0] != "password" or not any(t[1] < f[2] and f[1] < t[2] for t in taken)
        ]
    return more


def find_private_data(
    text: str, *, field: str = "content", kinds: Collection[str] | None = None
) -> list[Finding]:
    """Every piece of private data in ``text`` (see :data:`KINDS`), in order of position.

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
# Longer than a folded SSN or IBAN with its spaces, or a key, quote, spaces and separator.
_NEAR_JOIN = 64


def _may_hold_first_kinds(folded: str) -> bool:
    """A cheap necessary condition for an email, phone or card in ``folded``."""
    return (
        "@" in folded
        or sum(map(folded.count, _DIGITS)) >= _MIN_DIGITS
        or _OBFUSCATED_HINT.search(folded) is not None
    )


# Hints of the tokens a space may precede: "Bearer <token>", "aws_secret_access_key = <key>".
_SPACED_TOKEN_HINTS = ("earer", "EARER", "ccess_key", "ccessKey", "ccesskey", "CCESS_KEY")


def _later_kind_hints(folded: str) -> frozenset[str]:
    """Kinds besides SSNs and IBANs that a read of ``folded`` may find (cheap checks)."""
    kinds: set[str] = set()
    if "PRIVATE KEY" in folded:
        kinds.add("private_key")
    if ("=" in folded or ":" in folded) and _may_hold_password(folded):
        kinds.update(("password", "api_key"))  # a token as the value is reported as a token
    elif any(hint in folded for hint in _SPACED_TOKEN_HINTS):
        kinds.add("api_key")  # "Bearer" or an AWS secret key's name, then its value
    return frozenset(kinds)


def _cross_kinds(
    first_kinds: bool, digits: int, hints: Collection[frozenset[str]]
) -> frozenset[str]:
    """The kinds worth reading for across a join.

    ``first_kinds`` says whether to read for emails, phones and cards (decided once for
    all the fields joined, as before the other kinds existed); ``digits`` bounds how many
    digits an SSN or IBAN found there can hold; ``hints`` are :func:`_later_kind_hints`
    of the fields read and of the text around each join.
    """
    kinds = set(_FIRST_KINDS) if first_kinds else set()
    if digits >= 9:
        kinds.add("ssn")
    if digits >= _MIN_IBAN_DIGITS:
        kinds.add("iban")
    kinds.update(*hints)
    return frozenset(kinds)


def _glued_tokens(
    texts: Sequence[str], folded: str | None = None
) -> list[tuple[int, int, int, int]]:
    """Tokens split between texts read with nothing between them (a space would end them).

    Each is ``(first, last, start, end)``: the texts it spans and its offsets into
    ``" ".join(texts[first : last + 1])``. ``folded`` is the texts glued and normalised,
    when the caller has it.
    """
    glued = "".join(texts)
    if not _may_hold_token(_normalise(glued)[0] if folded is None else folded):
        return []
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text))
    found: list[tuple[int, int, int, int]] = []
    for f in find_private_data(glued, kinds=("api_key",)):
        first = bisect.bisect_right(starts, f.start) - 1
        last = bisect.bisect_right(starts, f.end - 1) - 1
        if first < last:
            base = starts[first]
            found.append((first, last, f.start - base, f.end - base + last - first))
    return found


def scan_fields(
    fields: Mapping[str, str | Sequence[str]], *, kinds: Collection[str] | None = None
) -> list[Finding]:
    """Scan each field, then the fields joined, so a secret split between fields is caught.

    A list field (e.g. tags) is read as its items joined by one space, and its
    offsets point into that string. Then the non-empty fields are read joined
    by one space, in mapping order, and every other ordered pair of fields is
    read across its join; tokens (API keys), which a space would end, are also
    read with the fields glued together. A finding that crosses a field boundary
    is reported with ``field`` naming the fields it spans joined by ``+`` (e.g.
    ``"content+tags"``) and offsets into those fields' texts joined by one
    space in that order.

    ``kinds`` limits the scan to those kinds (default: all), and with them its cost.
    """
    wanted = _resolve_kinds(kinds)
    texts = [
        (name, value if isinstance(value, str) else " ".join(value))
        for name, value in fields.items()
    ]
    findings: list[Finding] = []
    for name, text in texts:
        findings.extend(find_private_data(text, field=name, kinds=wanted))
    parts = [(name, text) for name, text in texts if text]
    if len(parts) < 2:
        return findings
    # Normalising is per character, so the folded fields joined are the joined text folded.
    folded = [_normalise(text)[0] for _, text in parts]
    joined = " ".join(folded)
    first_kinds = _may_hold_first_kinds(joined)
    # Hints only matter for the later kinds; a scan for emails, phones and cards alone
    # (the default law's) skips them.
    later = bool(wanted - _FIRST_KINDS)
    if not later and not first_kinds:
        return findings  # nothing an email, phone or card needs is in the fields at all
    hints = [_later_kind_hints(text) if later else frozenset[str]() for text in folded]

    def near(i: int, j: int) -> str:  # what a secret across the join of i and j holds
        return f"{folded[i][-_NEAR_JOIN:]} {folded[j][:_NEAR_JOIN]}"

    joined_digits = sum(map(joined.count, _DIGITS)) if later else 0
    kinds = _cross_kinds(
        first_kinds,
        joined_digits,
        [*hints, *(_later_kind_hints(near(k, k + 1)) for k in range(len(parts) - 1) if later)],
    )
    tokens = "api_key" in wanted
    crossing = _read_joined(parts, kinds & wanted, "".join(folded), tokens=tokens)
    # Every other ordered pair, read across its join (only the text near the join).
    for i, a in enumerate(parts):
        for j, b in enumerate(parts):
            if i != j and j != i + 1:
                if not later:
                    kinds = _FIRST_KINDS if first_kinds else frozenset()
                    crossing.extend(_read_pair(a, b, kinds & wanted, tokens=False))
                    continue
                around = near(i, j)  # an SSN or IBAN across the join has its digits here
                digits = sum(map(around.count, _DIGITS)) if joined_digits >= _MIN_IBAN_DIGITS else 0
                kinds = _cross_kinds(
                    first_kinds, digits, (hints[i], hints[j], _later_kind_hints(around))
                )
                crossing.extend(_read_pair(a, b, kinds & wanted, tokens=tokens))
    seen = set(findings)
    for finding in crossing:
        if finding not in seen and not any(
            g.field == finding.field
            and g.kind == finding.kind
            and g.start < finding.end
            and finding.start < g.end
            for g in findings
        ):
            seen.add(finding)
            findings.append(finding)
    return findings


def _read_joined(
    parts: Sequence[tuple[str, str]], kinds: frozenset[str], glued: str, *, tokens: bool = True
) -> list[Finding]:
    """Findings in all fields joined by one space (``kinds`` only) and glued (``glued`` is
    that text normalised), named by the fields they touch."""
    found: list[Finding] = []
    names = [name for name, _ in parts]
    joined = " ".join(text for _, text in parts)
    if kinds:
        segments: list[tuple[str, int, int]] = []
        pos = 0
        for name, text in parts:
            segments.append((name, pos, pos + len(text)))
            pos += len(text) + 1
        for f in find_private_data(joined, kinds=kinds):
            touched = [(name, s) for name, s, e in segments if s < f.end and f.start < e]
            offset = touched[0][1]
            field = "+".join(name for name, _ in touched)
            found.append(Finding(f.kind, field, f.start - offset, f.end - offset))
    if tokens:
        for first, last, start, end in _glued_tokens([text for _, text in parts], glued):
            found.append(Finding("api_key", "+".join(names[first : last + 1]), start, end))
    return found


def _read_pair(
    a: tuple[str, str], b: tuple[str, str], kinds: frozenset[str], *, tokens: bool = True
) -> list[Finding]:
    """Findings across the join of field ``a`` and then ``b``, in offsets of ``a``'s text."""
    (name_a, text_a), (name_b, text_b) = a, b
    found: list[Finding] = []
    field = f"{name_a}+{name_b}"
    left, right = text_a[-_PAIR_WINDOW:], text_b[:_PAIR_WINDOW]
    shift = len(text_a) - len(left)
    pair = left + " " + right
    if kinds:
        for f in find_private_data(pair, kinds=kinds):
            if f.start < len(left) < f.end - 1:
                found.append(Finding(f.kind, field, f.start + shift, f.end + shift))
    # A token glued across the join lies in the last word of one and the first of the other.
    tail = "" if left[-1:].isspace() else left.rsplit(None, 1)[-1]
    head = "" if right[:1].isspace() else right.split(None, 1)[0]
    if tokens and tail and head:
        shift = len(text_a) - len(tail)
        found.extend(
            Finding("api_key", field, start + shift, end + shift)
            for _, _, start, end in _glued_tokens([tail, head])
        )
    return found


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
