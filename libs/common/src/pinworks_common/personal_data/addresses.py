"""Postal addresses in free text: UK postcodes, US ZIP codes after a state (each with the house
number and the words before it on its line, whatever the street type), street lines
("12 Acacia Avenue") and towns of the shipped gazetteer after a cue ("of Leeds", "I live in
Leeds").

Each pattern is tried only where a match of it can start (`scan.matches_at`): a digit run, the
letters before one, a cue word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pinworks_common.personal_data.names import _WORD, firsts_stop, towns
from pinworks_common.personal_data.scan import Scan, matches_at

_POSTCODE = re.compile(r"\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\s?\d[A-Z]{2}\b")
_US_ZIP = re.compile(r"(?<=[, ])[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")
_STREET_TYPES = (r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Cl|Way|Court|Ct|Place|Pl|Crescent"
                 r"|Cres|Terrace|Terr|Gardens|Gdns|Grove|Gr|Square|Sq|Boulevard|Blvd|Hill|Park|Row|Mews"
                 r"|Walk|Rise|Parade|Highway|Hwy|Circle|Cir|Trail|Parkway|Pkwy|View|Green|Vale|Wharf|Quay")
_FLATS = ("Flat", "Apartment", "Apt", "Unit", "Suite")
_STREET = re.compile(
    rf"\b(?:(?:Flat|Apartment|Apt|Unit|Suite)\s+\w+,?\s+)?\d{{1,5}}[A-Za-z]?,?\s+(?:{_WORD}\s+){{1,3}}"
    rf"(?:{_STREET_TYPES})\b\.?")
_ADDRESS_TAIL = re.compile(
    rf"(?:,?\s+(?:{_WORD}(?:\s+{_WORD}){{0,2}}|[A-Z]{{1,2}}\d[A-Z\d]?\s?\d[A-Z]{{2}}|[A-Z]{{2}}\s+\d{{5}}"
    rf"(?:-\d{{4}})?))")
_NUMERIC_POSTCODE = re.compile(rf"({_WORD})(?:-|[ \t])(?:\d{{6}}|\d{{4}})\b(?![-/.,:]\d)")
_ADDRESS_HEAD = re.compile(
    rf"(?:\b(?:Flat|Apartment|Apt\.?|Unit|Suite|Studio|Level|PO Box|H\.No\.)\s+\w+"
    rf"|(?<![\w.,/-])\d{{1,5}}[A-Za-z]?(?:/\d{{1,5}})?)"
    rf"(?:,?[ \t]+(?:{_WORD}|\d{{1,5}}[A-Za-z]?)){{1,8}},?[ \t]*$")
"""A house number (or flat) and the capitalised words and numbers after it up to the end of the
text it is matched on: the street, locality and town lines before a postcode, whatever their
street type ("13 Oliver Pines, West Edward, N0F 9QG")."""
_TOWN_CUE = re.compile(
    rf"(?:\bof|\blive in|\blives in|\bliving in|\blived in|\bmoved to|\bbased in|\bresident of|\bfrom"
    rf"|\baddress is|\bhome in|\bflat in|\bhouse in)\s+({_WORD}(?:[ -]{_WORD}){{0,2}})")
_TOWN_CUE_STARTS = ("of", "live", "living", "moved to", "based in", "resident of", "from", "address is",
                    "home in", "flat in", "house in")

_HOME_CUE = re.compile(
    rf"(?:\b(?i:I|we|they|he|she|who) (?i:live|lives|lived|moved|have moved|am living|are living|am based"
    rf"|are based) (?i:in|to)|\b(?i:my home is in|my address is in|resident of))"
    rf"\s+({_WORD}(?:[ -]{_WORD}){{0,2}})")
_HOME_CUE_WORDS = ("live", "living", "moved", "based", "my home is in", "my address is in", "resident of")
"""Words one of which every match of `_HOME_CUE` holds."""


def _extend_address(text: str, end: int) -> int:
    """Past the comma-separated town, county and postcode that follow a street line."""
    while True:
        tail = _ADDRESS_TAIL.match(text, end)
        if tail is None:
            return end
        part = tail.group(0).lstrip(", \t")
        if not (part in towns() or _POSTCODE.fullmatch(part) or _US_ZIP.fullmatch(" " + part)
                or (tail.group(0).startswith(",") and part.split()[0] not in firsts_stop())):
            return end
        end = tail.end()


def home_cues(scan: Scan) -> list[re.Match[str]]:
    """Where someone says they live or moved to."""
    if not scan.may_hold(_HOME_CUE_WORDS, fold=True):
        return []
    return list(_HOME_CUE.finditer(scan.text))


def _postcodes(scan: Scan) -> Iterable[re.Match[str]]:
    text, runs = scan.text, scan.digit_runs
    # a UK postcode's first digit starts a run one or two letters in
    starts = {start - back for start, _ in runs for back in (1, 2) if start >= back}
    yield from matches_at(_POSTCODE, text, sorted(starts | set(scan.found(("GIR",)))))
    zips = []
    for start, end in runs:  # a ZIP's five digits start a run, after a state and spaces
        spaces = start
        while spaces > 0 and text[spaces - 1].isspace():
            spaces -= 1
        if end - start >= 5 and start > spaces >= 2:
            zips.append(spaces - 2)
    yield from matches_at(_US_ZIP, text, zips)


def address_spans(scan: Scan, home: list[re.Match[str]] | None = None) -> Iterable[tuple[int, int]]:
    text = scan.text
    for match in matches_at(_STREET, text, sorted({*scan.run_starts, *scan.found(_FLATS)})):
        yield match.start(), _extend_address(text, match.end())
    for match in _postcodes(scan):
        line_start = text.rfind("\n", 0, match.start()) + 1
        head = _ADDRESS_HEAD.search(text, max(line_start, match.start() - 160), match.start())
        yield (head.start() if head else match.start()), match.end()
    for match in _NUMERIC_POSTCODE.finditer(text):
        # "Junagadh-653510", "Hannahstone 2692": only with a street line before it, on its
        # line, that has a comma (a date, "12 June 2024", has none)
        line_start = text.rfind("\n", 0, match.start()) + 1
        head = _ADDRESS_HEAD.search(text, max(line_start, match.start() - 160), match.end(1))
        if head and "," in text[head.start():match.start(1)]:
            yield head.start(), match.end()
    for match in home_cues(scan) if home is None else home:
        # where someone lives or moved to: a place name the gazetteer may not know
        if match.group(1) not in firsts_stop():
            yield match.start(1), match.end(1)
    for match in scan.matches(_TOWN_CUE, _TOWN_CUE_STARTS):
        words = match.group(1)
        for cut in range(len(words), 0, -1):  # the longest prefix that is a town of the gazetteer
            if words[:cut] in towns() and (cut == len(words) or not words[cut].isalpha()):
                yield match.start(1), match.start(1) + cut
                break
