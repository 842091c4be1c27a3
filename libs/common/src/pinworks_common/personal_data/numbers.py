"""Numbers and e-mail addresses in free text: IBANs by their ISO 13616 check digits and card
numbers by Luhn (python-stdnum), phone numbers by Google's libphonenumber rules (phonenumbers),
e-mail addresses, sort codes and account numbers by regular expressions.

Each pattern is tried only where a match of it can start (`scan.matches_at`): a number's first
digit run, an ``@``, a cue word; the phone matcher reads only the stretches of text whose digits
could make a number long enough to keep (`_phone_windows`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from pinworks_common.personal_data.scan import Scan, matches_at

_IBAN_START = re.compile(r"\b[A-Z]{2}\d{2}(?=[ -]?[A-Z0-9])", re.IGNORECASE)
_IBAN_BODY = re.compile(r"(?:[ -]?[A-Z0-9])", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w])")
_CARD_GROUPED = re.compile(r"^\d{4}([ -])\d{4}\1\d{4}\1\d{4}$")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_EMAIL_LOCAL = string.ascii_letters + string.digits + "._%+-"
_EMAIL_DOMAIN = string.ascii_letters + string.digits + ".-"
_SORT_CODE = re.compile(r"\b\d{2}-\d{2}-\d{2}\b|(?<=sort code )\d{6}\b", re.IGNORECASE)
_ACCOUNT_CUED = re.compile(
    r"\b(?:account|acct|a/c)(?:\s+(?:number|no\.?|num|#))?\s*(?:is|:|#)?\s*(\d(?:[ -]?\d){5,11})\b",
    re.IGNORECASE)
_ACCOUNT_CUES = ("account", "acct", "a/c")
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


def ibans(scan: Scan) -> Iterable[tuple[int, int]]:
    text = scan.text
    # two letters, then the first two digits of a run
    starts = [start - 2 for start, end in scan.digit_runs if end - start >= 2 and start >= 2]
    for start_match in matches_at(_IBAN_START, text, starts):
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


def cards(scan: Scan) -> Iterable[tuple[int, int]]:
    for match in matches_at(_DIGIT_RUN, scan.text, scan.run_starts):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and (luhn.is_valid(digits) or _CARD_GROUPED.match(match.group(0))):
            yield match.start(), match.end()


def emails(scan: Scan) -> Iterator[tuple[int, int]]:
    """Each address is searched for only between the start of the run of local-part characters
    before an ``@`` and the end of the run of domain characters after it (and the one character
    its closing ``\\b`` reads)."""
    text, end = scan.text, 0
    for at in scan.found("@"):
        local = len(text[:at].rstrip(_EMAIL_LOCAL))
        after = text[at + 1:]
        stop = at + 1 + len(after) - len(after.lstrip(_EMAIL_DOMAIN))
        match = _EMAIL.search(text, max(end, local), stop + 1)
        if match is not None:
            yield match.span()
            end = match.end()


def accounts(scan: Scan) -> Iterator[tuple[int, int]]:
    """Sort codes, account numbers after a cue, and bare eight-digit numbers."""
    text, runs = scan.text, scan.digit_runs
    for match in matches_at(_SORT_CODE, text, scan.run_starts):
        yield match.span()
    for match in scan.matches(_ACCOUNT_CUED, _ACCOUNT_CUES, fold=True):
        yield match.span(1)
    for match in matches_at(_BARE_ACCOUNT, text, [start for start, end in runs if end - start == 8]):
        yield match.span()


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
_PHONE_DIGITS = 8  # no number with fewer is kept
# Between two digit runs of one candidate of PhoneNumberMatcher lie at most four punctuation
# characters, or an extension's words ("ext.", ";ext=", " x ", "#"): one run of letters among
# spaces, tabs and the punctuation an extension takes.
_PHONE_GAP = re.compile(r"[ \xa0\t,;=:.．\-#＃~～]*[^\W\d_]*[ \xa0\t,;=:.．\-#＃~～]*")
_PHONE_LEAD = 10  # a candidate's "(", "+" and punctuation before its first digit: (1 + 4) * 2
_PHONE_TAIL = 8   # its closing "#" and the ":mm" its time-stamp check reads after it
_PHONE_TRIES = 65535  # PhoneNumberMatcher's default max_tries


def _phone_windows(scan: Scan) -> list[tuple[int, int, int]] | None:
    """(start, end, digits' end) of each stretch of text where the matcher may find a number
    of 8 digits or more: digit runs joined where a candidate can span their gap, with the
    characters before and after that a candidate or its checks read. Reading only these finds
    what reading the whole text finds, unless the matcher could give up (more than 65,535 failed
    tries: a candidate is tried at most 7 + 6 * its length times, and a run of digits starts at
    most one candidate per digit): then None."""
    text = scan.text
    groups: list[list[int]] = []  # start, end, digits
    for start, end in scan.digit_runs:
        if groups and (start - groups[-1][1] <= 4 or _PHONE_GAP.fullmatch(text, groups[-1][1], start)):
            groups[-1][1:] = [end, groups[-1][2] + end - start]
        else:
            groups.append([start, end, end - start])
    tries = sum(digits * (7 + 6 * (end - start + _PHONE_LEAD + 1)) for start, end, digits in groups)
    if tries >= _PHONE_TRIES:
        return None
    windows, previous = [], 0
    for start, end, digits in groups:
        if digits >= _PHONE_DIGITS:
            windows.append((max(previous, start - _PHONE_LEAD), min(len(text), end + _PHONE_TAIL), end))
        previous = end
    return windows


def _phone_matches(text: str, region: str, windows: list[tuple[int, int, int]] | None
                   ) -> Iterator[tuple[int, phonenumbers.PhoneNumberMatch]]:
    """(start in ``text``, match) of each number PhoneNumberMatcher finds, read in ``windows``."""
    leniency = phonenumbers.Leniency.POSSIBLE
    if windows is None:
        yield from ((m.start, m) for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency))
        return
    for start, end, digits_end in windows:
        for match in phonenumbers.PhoneNumberMatcher(text[start:end], region, leniency=leniency):
            if start + match.start >= digits_end:
                break  # the next stretch's, found there
            yield start + match.start, match


def phones(scan: Scan, regions: Iterable[str], taken: Iterable[tuple[int, int]] = ()
           ) -> Iterable[tuple[int, int]]:
    """Phone numbers; none is looked for when fewer than 8 digits lie outside ``taken`` (the
    numbers that outrank a phone and so would win any overlap): parsing is the detector's
    slowest step, and most text, a card number in it or not, has no phone number."""
    text = scan.text
    if _digits_outside(text, taken) < _PHONE_DIGITS:
        return
    windows = _phone_windows(scan)
    for region in regions:
        for start, match in _phone_matches(text, region, windows):
            raw = match.raw_string.strip()
            digits = re.sub(r"\D", "", raw)
            international = raw.startswith(("+", "00"))
            if not (len(digits) >= 10 or (international and len(digits) >= _PHONE_DIGITS)):
                continue
            if phonenumbers.number_type(match.number) in _NOT_PERSONAL:
                continue  # a freephone line (0800 ...) is a business's helpline, not a person's
            if not (international or raw.startswith(("0", "(")) or _US_GROUPS.fullmatch(raw)
                    or _PHONE_CUE.search(text[max(0, start - 30):start])):
                continue  # "6088673633", "4471-2290-113": a reference, not a number to ring
            yield start, start + len(match.raw_string)
