"""Finding personal data in free text: what a bank keeps out of prompts, logs and audit columns.

Numbers are found by validation where a standard exists: IBANs by their ISO 13616 check digits
(python-stdnum), card numbers by Luhn (python-stdnum), phone numbers by Google's libphonenumber
rules (phonenumbers). E-mail addresses, sort codes and account numbers are regular expressions.
Names are found by a shipped gazetteer of first names (data/first_names.txt, built by
tools/personal_data/build_gazetteer.py) followed by a capitalised surname, by cues ("my name is",
"Mr", a greeting, a sign-off, "my husband"), and by the values the caller already knows to be
names (the ticket's ``customer_name``); a name's letters may be any Latin ones ("Juhász").
Postal addresses are found by UK postcodes, US ZIP codes after a state (each with the house
number and the words before it on its line, whatever the street type), street lines
("12 Acacia Avenue") and towns of the shipped gazetteer after a cue ("of Leeds", "I live in
Leeds"). Nothing is downloaded, and no model is loaded. Precision and recall on a labelled set:
tools/personal_data/eval/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from importlib import resources

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn


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


# --- numbers ---------------------------------------------------------------------------------

_IBAN_START = re.compile(r"\b[A-Z]{2}\d{2}(?=[ -]?[A-Z0-9])", re.IGNORECASE)
_IBAN_BODY = re.compile(r"(?:[ -]?[A-Z0-9])", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w])")
_CARD_GROUPED = re.compile(r"^\d{4}([ -])\d{4}\1\d{4}\1\d{4}$")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_SORT_CODE = re.compile(r"\b\d{2}-\d{2}-\d{2}\b|(?<=sort code )\d{6}\b", re.IGNORECASE)
_ACCOUNT_CUED = re.compile(
    r"\b(?:account|acct|a/c)(?:\s+(?:number|no\.?|num|#))?\s*(?:is|:|#)?\s*(\d(?:[ -]?\d){5,11})\b",
    re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_BARE_ACCOUNT = re.compile(r"(?<![\d£$€.,:/-])\b\d{8}\b(?![\d%.,/:-]\d)")


def _iban_shaped(candidate: str) -> bool:
    """A valid IBAN, or one whose only fault is its check digits (a mistyped IBAN is still the
    customer's account). A letter outside A-Z that case-insensitive matching took for one
    ("İ") is none."""
    number = stdnum_iban.compact(candidate)
    try:
        fixed = number[:2] + stdnum_iban.calc_check_digits(number) + number[4:]
    except ValueError:
        return False
    return stdnum_iban.is_valid(fixed)


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    for start_match in _IBAN_START.finditer(text):
        start = start_match.start()
        ends = []
        pos, alnum = start_match.end(), 4
        while alnum < 34:
            body = _IBAN_BODY.match(text, pos)
            if body is None:
                break
            pos, alnum = body.end(), alnum + 1
            ends.append((pos, alnum))
        for end, count in reversed(ends):  # the longest valid cut: trailing words are not IBAN
            if count >= 15 and _iban_shaped(text[start:end]) and not text[end:end + 1].isalnum():
                yield start, end
                break


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and (luhn.is_valid(digits) or _CARD_GROUPED.match(match.group(0))):
            yield match.start(), match.end()


def _digits_outside(text: str, spans: Iterable[tuple[int, int]]) -> int:
    covered = sorted(spans)
    count, pos = 0, 0
    for start, end in covered:
        if start > pos:
            count += len(_DIGIT.findall(text, pos, start))
        pos = max(pos, end)
    return count + len(_DIGIT.findall(text, pos))


_NOT_PERSONAL = frozenset({phonenumbers.PhoneNumberType.TOLL_FREE})
_US_GROUPS = re.compile(r"\d{3}[-. ]\d{3}[-. ]\d{4}")
_PHONE_CUE = re.compile(r"(?i:\b(?:phone|mobile|cell|tel|call|ring|text|whatsapp|reach me|on))\W*$")


def _phones(text: str, regions: Iterable[str], taken: Iterable[tuple[int, int]] = ()
            ) -> Iterable[tuple[int, int]]:
    """Phone numbers; none is looked for when fewer than 8 digits lie outside ``taken`` (the
    numbers that outrank a phone and so would win any overlap): parsing is the detector's
    slowest step, and most text, a card number in it or not, has no phone number."""
    if _digits_outside(text, taken) < 8:
        return
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            raw = match.raw_string.strip()
            digits = re.sub(r"\D", "", raw)
            international = raw.startswith(("+", "00"))
            if not (len(digits) >= 10 or (international and len(digits) >= 8)):
                continue
            if phonenumbers.number_type(match.number) in _NOT_PERSONAL:
                continue  # a freephone line (0800 ...) is a business's helpline, not a person's
            if not (international or raw.startswith(("0", "(")) or _US_GROUPS.fullmatch(raw)
                    or _PHONE_CUE.search(text[max(0, match.start - 30):match.start])):
                continue  # "6088673633", "4471-2290-113": a reference, not a number to ring
            yield match.start, match.end


# --- names -----------------------------------------------------------------------------------


@cache
def _names(file: str) -> frozenset[str]:
    text = resources.files("pinworks_common.personal_data").joinpath("data", file).read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def first_names() -> frozenset[str]:
    return _names("first_names.txt") - _names("not_names.txt")


@cache
def surnames() -> frozenset[str]:
    return _names("surnames.txt") - _names("not_names.txt")


def towns() -> frozenset[str]:
    return _names("towns.txt")


def _latin(test: str) -> str:
    """The Latin letters beyond ASCII (Latin-1 to Extended-B, Extended Additional) that pass
    ``test`` ("isupper" or "islower"), for a character class: names are "Juhász", "Pușcașu"."""
    ranges = (range(0xC0, 0x250), range(0x1E00, 0x1F00))
    return "".join(chr(c) for r in ranges for c in r if getattr(chr(c), test)())


_UPPER = "A-Z" + _latin("isupper")
_LOWER = "a-z" + _latin("islower")
_WORD = rf"[{_UPPER}][{_LOWER}'’]+(?:-[{_UPPER}][{_LOWER}'’]+)?"
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Sir|Dame|Prof)\.?"
_TITLED = re.compile(rf"\b{_TITLE}\s+((?:[A-Z]\.?\s+)?{_WORD}(?:\s+{_WORD})?)")
# strong cues name whoever follows; weak cues only a first name of the gazetteer
_STRONG_CUE = re.compile(
    rf"(?i:\bmy name is|\bmy name's|\bname on the (?:card|account) is|\bsigned,?|\bmy full name is"
    rf"|\baccount holder(?: is)?:?)\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
_WEAK_CUE = re.compile(
    rf"(?:\bthis is|\bI am|\bI'm|\bI’m"
    rf"|\b(?:my|our) (?:husband|wife|partner|son|daughter|mother|father|mum|mom|dad|brother|sister"
    rf"|friend|colleague|carer|landlord|neighbour|neighbor)(?:,)?|\bcalled|\bnamed"
    rf"|\bto|\bfrom|\bwith|\bpayee|\bbeneficiary(?: is)?)\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
# cues after which a capitalised word is a person's name whether the gazetteer knows it or not
_RELATION_CUE = re.compile(
    rf"(?:\b(?i:my|our) (?i:husband|wife|partner|son|daughter|mother|father|mum|mom|dad|brother"
    rf"|sister|carer|landlord|neighbour|neighbor|grandson|granddaughter)(?:,)?"
    rf"|\b(?i:someone|somebody|a man|a woman|a person|a guy|a lady) (?i:called|named|calling himself"
    rf"|calling herself)|\b(?i:the )?(?i:payee|beneficiary|recipient)(?: (?i:is))?:?)"
    rf"\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
# "hi its aranka kocsis": a name written in lower case right after the greeting's "it's"
_LOWER_INTRO = re.compile(
    rf"(?i:^\s*(?:hi|hello|hey)[,!]?\s+(?:it's|its|it’s|this is)|\bmy name is|\bmy name's)"
    rf"\s+([{_LOWER}'’-]+(?:\s+[{_LOWER}'’-]+)?)")
_FUNCTION_WORD_TEXT = """a an the and or but i im i'm is am are was my me on in at to of for from
with here not just still also please can could would will have has had did do does so because"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())
# a letter's name line: one to three capitalised words on the line right above a street line
_NAME_ABOVE_ADDRESS = re.compile(
    rf"(?m:^)[ \t]*((?:{_TITLE}\s+)?{_WORD}(?:[ \t]+{_WORD}){{1,2}})[ \t]*\n[ \t]*"
    rf"(?=(?:Flat|Apartment|Apt|Unit|Suite|Level|Studio|H\.No\.|PO Box)\b"
    rf"|\d{{1,5}}[A-Za-z]?(?:/\d+)?,?\s+{_WORD})")
_GREETING = re.compile(rf"(?:^|\n)\s*(?:Hi|Hello|Dear|Hey)\s+({_WORD}(?:\s+{_WORD})?)\b")
_SIGN_OFF_WORDS = (r"Thanks|Thank you|Many thanks|Regards|Kind regards|Best regards|Best wishes|Best|Cheers"
                   r"|Sincerely|Yours sincerely|Yours faithfully|Yours truly|Warm regards|Ta|Thx")
_SIGN_OFF = re.compile(rf"(?i:{_SIGN_OFF_WORDS}),?\s*[,-]\s*({_WORD}(?:\s+{_WORD})?)\b")
# a sign-off and a line break: the next line, when it is one to three capitalised words, is a name
_SIGNATURE = re.compile(
    rf"(?i:{_SIGN_OFF_WORDS})[,.!]?[ \t]*\n\s*"
    rf"((?:{_TITLE}\s+)?{_WORD}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_WORD}){{0,2}})"
    rf"[ \t]*(?:\n|$)")


def _is_surname_like(word: str) -> bool:
    return word not in _names("not_names.txt") and word not in towns()


def _name_spans(text: str, known: Iterable[str]) -> Iterable[tuple[int, int]]:
    for value in known:
        value = value.strip()
        if len(value) < 2:
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE):
            yield match.start(), match.end()
    for match in _TITLED.finditer(text):
        yield match.start(), match.end(1)
    firsts = first_names()
    for pattern in (_STRONG_CUE, _SIGNATURE):
        for match in pattern.finditer(text):
            words = list(re.finditer(rf"{_WORD}", match.group(1)))
            end = 0
            for word in words:
                if word.group(0) in firsts_stop():
                    break
                end = word.end()
            if end:
                yield match.start(1), match.start(1) + end
    for pattern in (_RELATION_CUE, _NAME_ABOVE_ADDRESS):
        for match in pattern.finditer(text):
            end = 0
            for word in _WORD_RE.finditer(match.group(1)):
                if not _is_surname_like(word.group(0)) or word.group(0) in firsts_stop():
                    break
                end = word.end()
            if end:
                yield match.start(1), match.start(1) + end
    for match in _LOWER_INTRO.finditer(text):
        end = 0
        for word in re.finditer(r"\S+", match.group(1)):
            if word.group(0).casefold() in _FUNCTION_WORDS:
                break
            end = word.end()
        if end:
            yield match.start(1), match.start(1) + end
    for pattern in (_WEAK_CUE, _GREETING, _SIGN_OFF):
        for match in pattern.finditer(text):
            words = list(re.finditer(rf"{_WORD}", match.group(1)))
            # a cue names someone when the first word is a first name or a known surname; the
            # words after it are kept while they look like a surname
            if not words or words[0].group(0) not in firsts:
                continue
            end = words[0].end()
            for word in words[1:]:
                if not _is_surname_like(word.group(0)):
                    break
                end = word.end()
            yield match.start(1), match.start(1) + end
    for match in re.finditer(rf"\b({_WORD})\s+((?:[A-Z]\.\s+)?{_WORD}(?:\s+{_WORD})?)", text):
        first, rest = match.group(1), match.group(2).split()
        if first in firsts and all(_is_surname_like(word) for word in rest if not word.endswith(".")):
            yield match.start(1), match.end(2)


@cache
def firsts_stop() -> frozenset[str]:
    """Capitalised words that end a name run (a first name is never followed by these)."""
    return _names("not_names.txt")


# --- addresses -------------------------------------------------------------------------------

_POSTCODE = re.compile(r"\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\s?\d[A-Z]{2}\b")
_US_ZIP = re.compile(r"(?<=[, ])[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")
_STREET_TYPES = (r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Cl|Way|Court|Ct|Place|Pl|Crescent"
                 r"|Cres|Terrace|Terr|Gardens|Gdns|Grove|Gr|Square|Sq|Boulevard|Blvd|Hill|Park|Row|Mews"
                 r"|Walk|Rise|Parade|Highway|Hwy|Circle|Cir|Trail|Parkway|Pkwy|View|Green|Vale|Wharf|Quay")
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

_HOME_CUE = re.compile(
    rf"(?:\b(?i:I|we|they|he|she|who) (?i:live|lives|lived|moved|have moved|am living|are living|am based"
    rf"|are based) (?i:in|to)|\b(?i:my home is in|my address is in|resident of))"
    rf"\s+({_WORD}(?:[ -]{_WORD}){{0,2}})")


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


def _address_spans(text: str) -> Iterable[tuple[int, int]]:
    for match in _STREET.finditer(text):
        yield match.start(), _extend_address(text, match.end())
    for pattern in (_POSTCODE, _US_ZIP):
        for match in pattern.finditer(text):
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
    for match in _HOME_CUE.finditer(text):
        # where someone lives or moved to: a place name the gazetteer may not know
        if match.group(1) not in firsts_stop():
            yield match.start(1), match.end(1)
    for match in _TOWN_CUE.finditer(text):
        words = match.group(1)
        for cut in range(len(words), 0, -1):  # the longest prefix that is a town of the gazetteer
            if words[:cut] in towns() and (cut == len(words) or not words[cut].isalpha()):
                yield match.start(1), match.start(1) + cut
                break


# --- all together ----------------------------------------------------------------------------

_PRIORITY = {Kind.IBAN: 0, Kind.CARD: 1, Kind.EMAIL: 2, Kind.ACCOUNT: 3, Kind.PHONE: 4,
             Kind.ADDRESS: 5, Kind.NAME: 6}


_TOKEN = re.compile(rf"[{_UPPER}][{_LOWER}'’]+")
_WORD_RE = re.compile(_WORD)


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
    digits = _DIGIT.search(text) is not None
    if digits:
        candidates += [(Kind.IBAN, s, e) for s, e in _ibans(text)]
        candidates += [(Kind.CARD, s, e) for s, e in _cards(text)]
    if "@" in text:
        candidates += [(Kind.EMAIL, m.start(), m.end()) for m in _EMAIL.finditer(text)]
    if digits:
        candidates += [(Kind.ACCOUNT, m.start(), m.end()) for m in _SORT_CODE.finditer(text)]
        candidates += [(Kind.ACCOUNT, m.start(1), m.end(1)) for m in _ACCOUNT_CUED.finditer(text)]
        candidates += [(Kind.ACCOUNT, m.start(), m.end()) for m in _BARE_ACCOUNT.finditer(text)]
        candidates += [(Kind.PHONE, s, e) for s, e in _phones(text, regions, [c[1:] for c in candidates])]
    words = _capitalised(text)
    if digits or words & _town_starts() or _HOME_CUE.search(text):
        candidates += [(Kind.ADDRESS, s, e) for s, e in _address_spans(text)]
    if (known or words & first_names() or _TITLED.search(text) or _STRONG_CUE.search(text)
            or _RELATION_CUE.search(text) or _LOWER_INTRO.search(text)
            or ("\n" in text and (_SIGNATURE.search(text) or _NAME_ABOVE_ADDRESS.search(text)))):
        candidates += [(Kind.NAME, s, e) for s, e in _name_spans(text, known)]
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
    parts: list[str] = []
    pos = 0
    for finding in findings:
        parts += [text[pos:finding.start], finding.kind.placeholder]
        pos = finding.end
    parts.append(text[pos:])
    return "".join(parts), findings
