"""Does one sentence contradict another on the same subject? A lexical heuristic.

No model, on purpose: the gate must be fast, pure and explainable. Two texts are
on the *same subject* when their content words mostly agree. They *conflict*
when, on the same subject,

* one is negated and the other is not ("the cache is **not** shared" /
  "the cache is shared"), or
* they name different values in otherwise the same statement: one or two words
  swapped ("rotates on **Mondays**" / "rotates on **Fridays**", "at 9:30" /
  "at 10:00"), with enough words in common to be the same claim.

It misses paraphrases and finds some false conflicts; the contradiction law
*flags* (accepts, for review), it does not reject. Measured in
tests/unit/test_contradict.py.
"""

from __future__ import annotations

import re

__all__ = ["conflict", "content_terms"]

_WORD = re.compile(r"[a-z0-9]+(?:[:.'][a-z0-9]+)*")
_NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without"}
)
_STOP_WORDS = """
    a an the is are was were be been being am do does did has have had of in on at to for
    from by with and or but if then so as it its this that these those there here we you they
    he she i our your their his her my me us them will would shall should can could may might
    must also just only very really still now"""
_DAY_MONTH_WORDS = """
    monday tuesday wednesday thursday friday saturday sunday weekday weekend daily weekly
    monthly yearly nightly hourly morning afternoon evening night noon midnight january february
    march april may june july august september october november december today tomorrow
    yesterday"""
_STOP = frozenset(_STOP_WORDS.split())
_DAYS_MONTHS = frozenset(_DAY_MONTH_WORDS.split())
#: Shared content words needed before a swapped word counts as "a different value".
MIN_SHARED = 3
#: Share of content words (Jaccard) needed to call two texts the same subject.
SAME_SUBJECT = 0.5


def _words(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("n't", " not")
    return _WORD.findall(text)


def content_terms(text: str) -> tuple[frozenset[str], bool]:
    """The content words of ``text`` and whether it is negated (an odd number of negations)."""
    words = _words(text)
    negations = sum(1 for w in words if w in _NEGATIONS)
    terms = frozenset(w for w in words if w not in _STOP and w not in _NEGATIONS)
    return terms, negations % 2 == 1


def _is_value(term: str) -> bool:
    """A number, time, date, day or month: the words a fact's value is usually in."""
    return any(c.isdigit() for c in term) or term.rstrip("s") in _DAYS_MONTHS


def conflict(new: str, old: str) -> str | None:
    """Why ``new`` contradicts ``old`` ("opposite polarity", "a different value"), or None."""
    a, neg_a = content_terms(new)
    b, neg_b = content_terms(old)
    union = a | b
    if not union:
        return None
    shared = a & b
    words_a = {t for t in a if not _is_value(t)}
    values_a, values_b = a - words_a, {t for t in b if _is_value(t)}
    if (
        neg_a == neg_b
        and words_a
        and words_a == b - values_b
        and values_a
        and values_b
        and not (values_a <= values_b or values_b <= values_a)
    ):
        return "a different value"  # the same words around different values
    if len(shared) / len(union) < SAME_SUBJECT and not (
        len(shared) >= MIN_SHARED and len(a ^ b) <= 4
    ):
        return None
    if neg_a != neg_b and len(shared) >= 2 and len(a ^ b) <= 2:
        return "opposite polarity"
    only_a, only_b = a - b, b - a
    if (
        neg_a == neg_b
        and only_a
        and only_b
        and len(only_a) <= 2
        and len(only_b) <= 2
        and len(shared) >= MIN_SHARED
    ):
        return "a different value"
    return None
