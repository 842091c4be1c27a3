"""One text as the detectors read it, and matching a pattern only where it can start.

A pattern that opens with ``\\b`` or an alternation of case-insensitive words gives Python's
regex engine nothing to skip ahead with, so it tries a match at every position; on a 700-character
draft that was most of the detector's cost. Where every match of a pattern must start at a digit
run, a newline or one of a few words, `matches_at` tries it only there and gives the matches
`finditer` gives: the same spans, the same groups, in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Under re.IGNORECASE a lower-case ASCII letter also matches these (and the Kelvin sign, which
# str.lower() already makes "k"); "İ".lower() is two characters, so it is mapped first
# (tests check this against the regex engine for every code point).
_CASE_ALIASES = str.maketrans({"İ": "i", "ı": "i", "ſ": "s"})
_DIGITS = re.compile(r"\d+")


def _latin(test: str) -> str:
    """The Latin letters beyond ASCII (Latin-1 to Extended-B, Extended Additional) that pass
    ``test`` ("isupper" or "islower"), for a character class: names are "Juhász", "Pușcașu"."""
    ranges = (range(0xC0, 0x250), range(0x1E00, 0x1F00))
    return "".join(chr(c) for r in ranges for c in r if getattr(chr(c), test)())


UPPER = "A-Z" + _latin("isupper")
"""The capital letters a name or a place starts with, for a character class."""
LOWER = "a-z" + _latin("islower")
_CAPITALS = re.compile(f"[{UPPER}]")


def folded(text: str) -> str:
    """``text`` lower-cased, as long as it, with a lower-case ASCII word at every position where
    a case-insensitive pattern matches that word."""
    if "İ" in text or "ı" in text or "ſ" in text:
        text = text.translate(_CASE_ALIASES)
    return text.lower()


def occurrences(haystack: str, words: Iterable[str]) -> list[int]:
    """Every position in ``haystack`` where one of ``words`` occurs, in order."""
    found: set[int] = set()
    for word in words:
        at = haystack.find(word)
        while at >= 0:
            found.add(at)
            at = haystack.find(word, at + 1)
    return sorted(found)


class lazy(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cached_property
    """functools.cached_property without its lock (Python 3.11 takes one on every first read,
    a tenth of the detector's time on short texts)."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute, self.name = compute, compute.__name__

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


DIRECT_CHARS = 96
"""Up to this length a pattern is searched for at every position: finding its words first
costs more than it saves."""


def matches_at(pattern: re.Pattern[str], text: str, starts: Iterable[int]) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, given (in order) every position a match can start at (more
    are harmless). For patterns that never match the empty string."""
    end = 0
    for start in starts:
        if start >= end and (match := pattern.match(text, start)) is not None:
            yield match
            end = match.end()


class Scan:
    """What several detectors read of one text, worked out once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.digit_runs = [match.span() for match in _DIGITS.finditer(text)]
        """(start, end) of every maximal run of digits (``\\d``, any script's)."""

    @lazy
    def capitals(self) -> bool:
        """Whether a capital letter a name or a place starts with occurs."""
        return _CAPITALS.search(self.text) is not None

    @lazy
    def low(self) -> str:
        return folded(self.text)

    @lazy
    def run_starts(self) -> list[int]:
        return [start for start, _ in self.digit_runs]

    @lazy
    def line_starts(self) -> list[int]:
        return [0, *(at + 1 for at in occurrences(self.text, "\n"))]

    def found(self, words: Iterable[str], *, fold: bool = False) -> list[int]:
        """Where ``words`` occur in the text (in its folded form with ``fold``: where a
        case-insensitive pattern can match them)."""
        return occurrences(self.low if fold else self.text, words)

    def may_hold(self, words: Iterable[str], *, fold: bool = False) -> bool:
        """False when none of ``words`` occurs (a short text is not looked at: true)."""
        haystack = self.low if fold else self.text
        return len(self.text) <= DIRECT_CHARS or any(word in haystack for word in words)

    def matches(self, pattern: re.Pattern[str], words: Iterable[str], *, fold: bool = False,
                at_start: bool = False) -> Iterator[re.Match[str]]:
        """``pattern.finditer`` over the text, for a pattern whose every match starts with one of
        ``words`` (matched case-insensitively with ``fold``), or at the text's start."""
        if len(self.text) <= DIRECT_CHARS:
            return pattern.finditer(self.text)
        starts = self.found(words, fold=fold)
        return matches_at(pattern, self.text, [0, *starts] if at_start else starts)
