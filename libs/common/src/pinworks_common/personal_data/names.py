"""Names in free text: a shipped gazetteer of first names (data/first_names.txt, built by
tools/personal_data/build_gazetteer.py) followed by a capitalised surname, cues ("my name is",
"Mr", a greeting, a sign-off, "my husband"), and the values the caller already knows to be names
(the ticket's ``customer_name``); a name's letters may be any Latin ones ("Juhász").

Each cue's pattern is tried only where one of its words occurs (`scan.matches_at`), and each
is searched once per text: `NameCues` keeps what the gate in `detect._candidates` found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources

from pinworks_common.personal_data.scan import LOWER as _LOWER
from pinworks_common.personal_data.scan import UPPER as _UPPER
from pinworks_common.personal_data.scan import Scan, matches_at


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


_WORD = rf"[{_UPPER}][{_LOWER}'’]+(?:-[{_UPPER}][{_LOWER}'’]+)?"
_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Sir", "Dame", "Prof")
_TITLE = rf"(?:{'|'.join(_TITLES)})\.?"
_TITLED = re.compile(rf"\b{_TITLE}\s+((?:[A-Z]\.?\s+)?{_WORD}(?:\s+{_WORD})?)")
# strong cues name whoever follows; weak cues only a first name of the gazetteer
_STRONG_CUE = re.compile(
    rf"(?i:\bmy name is|\bmy name's|\bname on the (?:card|account) is|\bsigned,?|\bmy full name is"
    rf"|\baccount holder(?: is)?:?)\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
_STRONG_STARTS = ("my name is", "my name's", "name on the ", "signed", "my full name is", "account holder")
_WEAK_CUE = re.compile(
    rf"(?:\bthis is|\bI am|\bI'm|\bI’m"
    rf"|\b(?:my|our) (?:husband|wife|partner|son|daughter|mother|father|mum|mom|dad|brother|sister"
    rf"|friend|colleague|carer|landlord|neighbour|neighbor)(?:,)?|\bcalled|\bnamed"
    rf"|\bto|\bfrom|\bwith|\bpayee|\bbeneficiary(?: is)?)\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
_WEAK_STARTS = ("this is", "I am", "I'm", "I’m", "my ", "our ", "called", "named", "to", "from", "with",
                "payee", "beneficiary")
# cues after which a capitalised word is a person's name whether the gazetteer knows it or not
_RELATION_CUE = re.compile(
    rf"(?:\b(?i:my|our) (?i:husband|wife|partner|son|daughter|mother|father|mum|mom|dad|brother"
    rf"|sister|carer|landlord|neighbour|neighbor|grandson|granddaughter)(?:,)?"
    rf"|\b(?i:someone|somebody|a man|a woman|a person|a guy|a lady) (?i:called|named|calling himself"
    rf"|calling herself)|\b(?i:the )?(?i:payee|beneficiary|recipient)(?: (?i:is))?:?)"
    rf"\s+({_WORD}(?:\s+{_WORD}){{0,2}})")
_RELATION_STARTS = ("my ", "our ", "someone ", "somebody ", "a man ", "a woman ", "a person ", "a guy ",
                    "a lady ", "the payee", "the beneficiary", "the recipient", "payee", "beneficiary",
                    "recipient")
# "hi its aranka kocsis": a name written in lower case right after the greeting's "it's"
_LOWER_INTRO = re.compile(
    rf"(?i:^\s*(?:hi|hello|hey)[,!]?\s+(?:it's|its|it’s|this is)|\bmy name is|\bmy name's)"
    rf"\s+([{_LOWER}'’-]+(?:\s+[{_LOWER}'’-]+)?)")
_LOWER_INTRO_STARTS = ("my name is", "my name's")  # and the text's start
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
_SIGN_OFF_STARTS = tuple(word.lower() for word in _SIGN_OFF_WORDS.split("|"))
_SIGN_OFF = re.compile(rf"(?i:{_SIGN_OFF_WORDS}),?\s*[,-]\s*({_WORD}(?:\s+{_WORD})?)\b")
# a sign-off and a line break: the next line, when it is one to three capitalised words, is a name
_SIGNATURE = re.compile(
    rf"(?i:{_SIGN_OFF_WORDS})[,.!]?[ \t]*\n\s*"
    rf"((?:{_TITLE}\s+)?{_WORD}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_WORD}){{0,2}})"
    rf"[ \t]*(?:\n|$)")


def _is_surname_like(word: str) -> bool:
    return word not in _names("not_names.txt") and word not in towns()


# "\b" and a capitalised word, written so the regex engine skips ahead to capital letters
_WORD_AT_BOUNDARY = rf"[{_UPPER}](?<!\w.)[{_LOWER}'’]+(?:-[{_UPPER}][{_LOWER}'’]+)?"
_FULL_NAME = re.compile(rf"({_WORD_AT_BOUNDARY})\s+((?:[A-Z]\.\s+)?{_WORD}(?:\s+{_WORD})?)")
_WORD_RE = re.compile(_WORD)


class NameCues:
    """The matches of the cues that name whoever follows them: they tell whether a text is worth
    reading for names at all, and are kept to read the names after them."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.lower_intro = list(scan.matches(_LOWER_INTRO, _LOWER_INTRO_STARTS, fold=True, at_start=True))
        self.titled = self.strong = self.relation = self.signature = self.name_above_address = []
        if not scan.capitals:
            return  # every other cue names a capitalised word
        self.titled = list(scan.matches(_TITLED, _TITLES))
        self.strong = list(scan.matches(_STRONG_CUE, _STRONG_STARTS, fold=True))
        self.relation = list(scan.matches(_RELATION_CUE, _RELATION_STARTS, fold=True))
        if "\n" in scan.text:
            self.signature = list(scan.matches(_SIGNATURE, _SIGN_OFF_STARTS, fold=True))
            self.name_above_address = list(matches_at(_NAME_ABOVE_ADDRESS, scan.text, scan.line_starts))

    def any(self) -> bool:
        return bool(self.titled or self.strong or self.relation or self.lower_intro
                    or self.signature or self.name_above_address)


def _known_spans(text: str, known: Iterable[str]) -> Iterable[tuple[int, int]]:
    """Where each value the caller knows to be a name occurs as a whole word, in any case.

    An ASCII value (most customers' names) is found by `_ascii_spans`, without compiling an
    expression for each name: `re` keeps 512, so each name new to the process cost a compile."""
    folded: str | None = None
    for value in known:
        value = value.strip()
        if len(value) < 2:
            continue
        if folded is None:
            folded = text.lower()
            plain = len(folded) == len(text) and not any(
                letter in text for letter in _ASCII_FOLDED)
        if plain and value.isascii():
            yield from _ascii_spans(text, folded, value.lower())
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE):
            yield match.start(), match.end()


_ASCII_FOLDED = frozenset("\u0131\u017f")
"""The letters other than ASCII ones that `re.IGNORECASE` matches with an ASCII letter though
their lower case is not that letter: dotless ı (an i) and long ſ (an s). The Kelvin sign's
lower case is a k; İ's is two characters, which `len(text.lower())` tells."""


def _ascii_spans(text: str, folded: str, value: str) -> Iterable[tuple[int, int]]:
    r"""What ``re.finditer(r"(?<!\w)<value>(?!\w)", text, re.IGNORECASE)`` finds for a
    lower-case ASCII `value` in a `text` whose lower case `folded` has a character for each of
    its own and none of `_ASCII_FOLDED`: there a character matches an ASCII letter exactly when
    its lower case is that letter, so the matches are `value`'s occurrences in `folded` with no
    word character (``\w``: `str.isalnum` or ``_``) either side, each looked for after the last
    one, an occurrence inside a longer word one character on."""
    size, end_of_text = len(value), len(text)
    start = folded.find(value)
    while start != -1:
        end = start + size
        if ((start == 0 or not _word(text[start - 1]))
                and (end == end_of_text or not _word(text[end]))):
            yield start, end
            start = folded.find(value, end)
        else:
            start = folded.find(value, start + 1)


def _word(char: str) -> bool:
    """``\\w`` of a `str` expression."""
    return char.isalnum() or char == "_"


def _cued_spans(cues: NameCues) -> Iterable[tuple[int, int]]:
    """Names after a cue that names whoever follows it."""
    for match in cues.titled:
        yield match.start(), match.end(1)
    for match in (*cues.strong, *cues.signature):
        end = 0
        for word in _WORD_RE.finditer(match.group(1)):
            if word.group(0) in firsts_stop():
                break
            end = word.end()
        if end:
            yield match.start(1), match.start(1) + end
    for match in (*cues.relation, *cues.name_above_address):
        end = 0
        for word in _WORD_RE.finditer(match.group(1)):
            if not _is_surname_like(word.group(0)) or word.group(0) in firsts_stop():
                break
            end = word.end()
        if end:
            yield match.start(1), match.start(1) + end
    for match in cues.lower_intro:
        end = 0
        for word in re.finditer(r"\S+", match.group(1)):
            if word.group(0).casefold() in _FUNCTION_WORDS:
                break
            end = word.end()
        if end:
            yield match.start(1), match.start(1) + end


def name_spans(cues: NameCues, known: Iterable[str]) -> Iterable[tuple[int, int]]:
    scan, text = cues.scan, cues.scan.text
    yield from _known_spans(text, known)
    yield from _cued_spans(cues)
    if not scan.capitals:
        return
    firsts = first_names()
    greeting_starts = sorted({0, *(start - 1 for start in scan.line_starts[1:])})  # ^ or a "\n"
    for matches in (scan.matches(_WEAK_CUE, _WEAK_STARTS), matches_at(_GREETING, text, greeting_starts),
                    scan.matches(_SIGN_OFF, _SIGN_OFF_STARTS, fold=True)):
        for match in matches:
            words = list(_WORD_RE.finditer(match.group(1)))
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
    for match in _FULL_NAME.finditer(text):
        first, rest = match.group(1), match.group(2).split()
        if first in firsts and all(_is_surname_like(word) for word in rest if not word.endswith(".")):
            yield match.start(1), match.end(2)


@cache
def firsts_stop() -> frozenset[str]:
    """Capitalised words that end a name run (a first name is never followed by these)."""
    return _names("not_names.txt")

