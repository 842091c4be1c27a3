"""Finding personal data in free text: what a bank keeps out of prompts, logs and audit columns.

Numbers are found by validation where a standard exists: IBANs by their ISO 13616 check digits
(python-stdnum), card numbers by Luhn (python-stdnum), phone numbers by Google's libphonenumber
rules (phonenumbers). E-mail addresses, sort codes and account numbers are regular expressions
(`numbers`). Names are found by a shipped gazetteer of first names followed by a capitalised
surname, by cues ("my name is", "Mr", a greeting, a sign-off, "my husband"), and by the values
the caller already knows to be names (`names`). Postal addresses are found by UK postcodes, US ZIP
codes after a state, street lines and towns of the shipped gazetteer after a cue (`addresses`).
Nothing is downloaded, and no model is loaded. Precision and recall on a labelled set:
tools/personal_data/eval/README.md.

Every pattern is tried only where a match of it can start (`scan`), each text is read once per
kind of cue, and a text's findings are kept for when it comes again: the detector runs on every
audited value, log line, prompt and draft. tools/personal_data/bench_detect.py prints its cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache

import phonenumbers

from pinworks_common.personal_data import numbers
from pinworks_common.personal_data.addresses import address_spans, home_cues
from pinworks_common.personal_data.names import _WORD_RE, NameCues, first_names, name_spans, towns
from pinworks_common.personal_data.scan import LOWER as _LOWER
from pinworks_common.personal_data.scan import UPPER as _UPPER
from pinworks_common.personal_data.scan import Scan


class Kind(StrEnum):
    """A kind of personal data; its placeholder in redacted text is ``[KIND]``."""

    CARD = "CARD"
    IBAN = "IBAN"
    ACCOUNT = "ACCOUNT"
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    NAME = "NAME"
    ADDRESS = "ADDRESS"

    @property
    def placeholder(self) -> str:
        return f"[{self.value}]"


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: where it is in the text, what it is, and its normal form
    (what a keyed hash is taken over, so the same card written two ways matches)."""

    kind: Kind
    start: int
    end: int
    text: str

    @property
    def value(self) -> str:
        return normalise(self.kind, self.text)


def normalise(kind: Kind, text: str) -> str:
    if kind in (Kind.CARD, Kind.ACCOUNT):
        return re.sub(r"\D", "", text)
    if kind is Kind.IBAN:
        return re.sub(r"[^0-9A-Za-z]", "", text).upper()
    if kind is Kind.PHONE:
        try:
            number = phonenumbers.parse(text, "GB")
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return re.sub(r"\D", "", text)
    return " ".join(text.casefold().split())


_PRIORITY = {Kind.IBAN: 0, Kind.CARD: 1, Kind.EMAIL: 2, Kind.ACCOUNT: 3, Kind.PHONE: 4,
             Kind.ADDRESS: 5, Kind.NAME: 6}


_TOKEN = re.compile(rf"[{_UPPER}][{_LOWER}'’]+")


@cache
def _town_starts() -> frozenset[str]:
    return frozenset(match.group(0) for town in towns() if (match := _TOKEN.match(town)))


def _capitalised(text: str) -> set[str]:
    """Every capitalised word a name or town reading could start with (also each part of a
    hyphenated one)."""
    return set(_TOKEN.findall(text)) | set(_WORD_RE.findall(text))


def _candidates(text: str, known: tuple[str, ...], regions: Iterable[str]
                ) -> list[tuple[Kind, int, int]]:
    """Every reading, each detector skipped where it cannot match (no digit for a number, no
    ``@`` for an e-mail, no gazetteer word or cue for a name or town): what keeps the common
    case, a log line with no personal data, cheap."""
    candidates: list[tuple[Kind, int, int]] = []
    scan = Scan(text)
    digits = bool(scan.digit_runs)
    if digits:
        candidates += [(Kind.IBAN, s, e) for s, e in numbers.ibans(scan)]
        candidates += [(Kind.CARD, s, e) for s, e in numbers.cards(scan)]
    if "@" in text:
        candidates += [(Kind.EMAIL, s, e) for s, e in numbers.emails(scan)]
    if digits:
        candidates += [(Kind.ACCOUNT, s, e) for s, e in numbers.accounts(scan)]
        taken = [c[1:] for c in candidates]
        candidates += [(Kind.PHONE, s, e) for s, e in numbers.phones(scan, regions, taken)]
    words = _capitalised(text)
    home = None  # every address reading has a capitalised word
    if scan.capitals and (digits or words & _town_starts() or (home := home_cues(scan))):
        candidates += [(Kind.ADDRESS, s, e) for s, e in address_spans(scan, home)]
    cues = NameCues(scan)
    if known or words & first_names() or cues.any():
        candidates += [(Kind.NAME, s, e) for s, e in name_spans(cues, known)]
    return candidates


CACHED_TEXT_CHARS = 4096
CACHED_TEXTS = 2048


def find(text: str, *, known_names: Iterable[str] = (), regions: Iterable[str] = ("GB", "US"),
         ) -> list[Finding]:
    """Every piece of personal data in ``text``, in order, never overlapping: where two readings
    overlap the validated number wins over the pattern, and then the longer span.

    The findings of the last `CACHED_TEXTS` texts up to `CACHED_TEXT_CHARS` long are kept in
    this process's memory (never stored), as a stage redacts the same draft, reason and labels
    in several rows and batches."""
    known = tuple(known_names)
    if len(text) > CACHED_TEXT_CHARS:
        return list(_find(text, known, tuple(regions)))
    return list(_find_cached(text, known, tuple(regions)))


@lru_cache(maxsize=CACHED_TEXTS)
def _find_cached(text: str, known: tuple[str, ...], regions: tuple[str, ...]
                 ) -> tuple[Finding, ...]:
    return _find(text, known, regions)


def _find(text: str, known: tuple[str, ...], regions: tuple[str, ...]) -> tuple[Finding, ...]:
    candidates = _candidates(text, known, regions)
    chosen: list[tuple[Kind, int, int]] = []
    for kind, start, end in sorted(candidates, key=lambda c: (_PRIORITY[c[0]], c[1] - c[2], c[1])):
        if start >= end:
            continue
        overlapping = [c for c in chosen if c[1] < end and start < c[2]]
        if not overlapping:
            chosen.append((kind, start, end))
        elif kind in (Kind.NAME, Kind.ADDRESS) and all(c[0] is kind for c in overlapping):
            # two readings of one name or one address: their union
            for c in overlapping:
                chosen.remove(c)
            chosen.append((kind, min([start, *(c[1] for c in overlapping)]),
                           max([end, *(c[2] for c in overlapping)])))
    return tuple(Finding(kind, s, e, text[s:e]) for kind, s, e in sorted(chosen, key=lambda c: c[1]))


def redact(text: str, *, known_names: Iterable[str] = (), regions: Iterable[str] = ("GB", "US"),
           ) -> tuple[str, list[Finding]]:
    """``text`` with every finding replaced by its kind's placeholder (``[CARD]``, ``[NAME]``, ...),
    and the findings (which hold the original text: never store or log them as they are)."""
    findings = find(text, known_names=known_names, regions=regions)
    if not findings:
        return text, findings
    parts: list[str] = []
    pos = 0
    for finding in findings:
        parts += [text[pos:finding.start], finding.kind.placeholder]
        pos = finding.end
    parts.append(text[pos:])
    return "".join(parts), findings
