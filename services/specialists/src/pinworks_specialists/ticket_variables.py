"""Echo-safe variables from a ticket: the customer's first name, an amount and its currency,
a date and a card's last four digits. Anything doubtful is left out, not guessed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class TemplateContext:
    """What the renderer may look at: the ticket text plus metadata from the intake."""

    body: str
    subject: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def variables(self) -> Mapping[str, str]:
        """`extract_variables` of this ticket, read once: agent assist renders up to three
        templates and a greeting from one context, and each would otherwise search the
        ticket's text again."""
        return MappingProxyType(extract_variables(self))


_SYMBOL_CURRENCY = {"£": "GBP", "€": "EUR", "$": "USD"}
_CURRENCY_CODES = frozenset(
    {
        "GBP", "EUR", "USD", "CHF", "PLN", "SEK", "NOK", "DKK", "CZK", "HUF", "RON", "BGN",
        "AUD", "CAD", "NZD", "JPY", "CNY", "HKD", "SGD", "INR", "AED", "ZAR", "MXN",
        "THB", "ILS", "RUB", "ISK", "SAR", "KRW",
    }
)  # fmt: skip
_CURRENCY_WORDS = {
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "sterling": "GBP",
    "euro": "EUR",
    "euros": "EUR",
    "dollar": "USD",
    "dollars": "USD",
    "franc": "CHF",
    "francs": "CHF",
    "zloty": "PLN",
    "yen": "JPY",
}
_CODES_ALT = "|".join(sorted(_CURRENCY_CODES))
_WORDS_ALT = "|".join(sorted(_CURRENCY_WORDS, key=len, reverse=True))
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"

_AMOUNT_RE = re.compile(
    rf"(?P<sym>[£€$])\s?(?P<n1>{_NUMBER})(?![\d,.]*\d)"
    rf"|(?<![\w.])(?P<code1>{_CODES_ALT})\s?(?P<n2>{_NUMBER})(?![\d,.]*\d)"
    rf"|(?<![\w.,])(?P<n3>{_NUMBER})\s?(?P<sym2>[£€])"
    rf"|(?<![\w.,])(?P<n4>{_NUMBER})\s?(?P<code2>{_CODES_ALT})\b"
    rf"|(?<![\w.,])(?P<n5>{_NUMBER})\s(?P<word>(?i:{_WORDS_ALT}))\b"
)
_CODE_RE = re.compile(rf"\b({_CODES_ALT})\b")
_WORD_RE = re.compile(rf"\b({_WORDS_ALT})\b", re.IGNORECASE)

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH_ALT = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE_RES = (
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"),
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+(?P<mon>{_MONTH_ALT})\b\.?"
        r"(?:,?\s+(?P<y>\d{4})\b)?",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?P<mon>{_MONTH_ALT})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b"
        r"(?:,?\s+(?P<y>\d{4})\b)?",
        re.IGNORECASE,
    ),
    re.compile(r"\b(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})\b"),
)

_LAST4_RES = (
    re.compile(r"\b(?:ending|ends|ended)(?:\s+(?:in|with))?[\s:#]*(?P<d>\d{4})\b", re.IGNORECASE),
    re.compile(r"\blast\s+(?:four|4)\s+(?:digits|numbers)\b\D{0,30}?(?P<d>\d{4})\b", re.IGNORECASE),
    re.compile(r"(?:[*xX•]{4}[\s-]?){1,3}(?P<d>\d{4})\b"),
)

_SIGN_OFF_RE = re.compile(
    r"^(?:thanks|thank you|many thanks|regards|kind regards|best regards|best|cheers|"
    r"sincerely|yours sincerely|best wishes|warm regards)[,!.]?\s*(?P<name>.*)$",
    re.IGNORECASE,
)
_TRAILING_SIGN_OFF_RE = re.compile(
    r"(?:thanks|thank you|regards|cheers|best wishes),\s*(?P<name>[A-Z][A-Za-z'\-]{1,29})[.!]?\s*$",
    re.IGNORECASE,
)
_NAME_RE = re.compile(r"^[A-Z][A-Za-z'\-]{0,29}$")
_NOT_NAMES = frozenset(
    {
        "none", "null", "customer", "anonymous", "unknown", "n/a", "me", "you", "larkspur",
        "team", "bank", "support", "again", "everyone", "all", "guys", "sir", "madam",
    }
)  # fmt: skip


def _clean_name(value: Any) -> str | None:
    """A first name safe to echo: one capitalised word, never 'None' or template syntax."""
    if not isinstance(value, str):
        return None
    words = value.strip().split()
    if not words:
        return None
    first = words[0].strip(",.")
    if first.lower() in {"mr", "mrs", "ms", "miss", "dr", "mx"} and len(words) > 1:
        return None
    if first.islower() or (first.isupper() and len(first) > 1):
        first = first.capitalize()
    if not _NAME_RE.match(first) or first.lower() in _NOT_NAMES:
        return None
    return first


def _name_from_signature(body: str) -> str | None:
    """Take a name only from an explicit sign-off ("Thanks,\\nMaria") to avoid guessing."""
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    if not lines:
        return None
    tail = lines[-2:]
    for i, line in enumerate(tail):
        match = _SIGN_OFF_RE.match(line)
        if not match:
            continue
        candidate = match.group("name").strip()
        if not candidate and i + 1 < len(tail):
            candidate = tail[i + 1]
        words = candidate.split()
        if 1 <= len(words) <= 2 and all(_NAME_RE.match(w.strip(".")) for w in words):
            return _clean_name(words[0])
    trailing = _TRAILING_SIGN_OFF_RE.search(lines[-1])
    if trailing and trailing.group("name")[0].isupper():
        return _clean_name(trailing.group("name"))
    return None


def _format_amount(match: re.Match[str]) -> tuple[str, str]:
    """Return (amount as the customer wrote it, ISO currency)."""
    groups = match.groupdict()
    if groups["sym"]:
        return f"{groups['sym']}{groups['n1']}", _SYMBOL_CURRENCY[groups["sym"]]
    if groups["code1"]:
        code = groups["code1"].upper()
        return f"{groups['n2']} {code}", code
    if groups["sym2"]:
        return f"{groups['sym2']}{groups['n3']}", _SYMBOL_CURRENCY[groups["sym2"]]
    if groups["code2"]:
        code = groups["code2"].upper()
        return f"{groups['n4']} {code}", code
    code = _CURRENCY_WORDS[groups["word"].lower()]
    symbol = next((s for s, c in _SYMBOL_CURRENCY.items() if c == code), None)
    if symbol:
        return f"{symbol}{groups['n5']}", code
    return f"{groups['n5']} {code}", code


def _find_amount(text: str) -> tuple[str, str] | None:
    for match in _AMOUNT_RE.finditer(text):
        number = next(g for g in (match.group(f"n{i}") for i in range(1, 6)) if g)
        if float(number.replace(",", "")) <= 0:
            continue
        return _format_amount(match)
    return None


_MONTH_WORD_RE = re.compile(rf"\b(?:{_MONTH_ALT})\b", re.IGNORECASE)


def _capitalise(match: re.Match[str]) -> str:
    return match.group(0).capitalize()


def _month_number(token: str) -> int:
    return _MONTHS[token[:3].lower()]


def _valid_date(day: int, month: int, year: int | None) -> bool:
    try:
        date(year or 2000, month, day)
    except ValueError:
        return False
    return year is None or 1990 <= year <= 2100


def _find_date(text: str) -> str | None:
    """First calendar date in the text, echoed as written; relative words are never dates."""
    found: list[tuple[int, str]] = []
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            day = int(groups["d"])
            month = int(groups["m"]) if groups.get("m") else _month_number(groups["mon"])
            year = int(groups["y"]) if groups.get("y") else None
            if _valid_date(day, month, year):
                written = " ".join(match.group(0).rstrip(".").split())
                found.append((match.start(), _MONTH_WORD_RE.sub(_capitalise, written)))
    if not found:
        return None
    return min(found)[1]


def _find_last4(text: str) -> str | None:
    for pattern in _LAST4_RES:
        match = pattern.search(text)
        if match:
            return match.group("d")
    return None


def _meta_str(metadata: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() and value.strip().lower() not in _NOT_NAMES:
            return value.strip()
    return None


def extract_variables(context: TemplateContext) -> dict[str, str]:
    """Pull echo-safe variables from the ticket; anything doubtful is left out, not guessed.

    Metadata wins over free text because intake data is structured; the text is searched
    subject first, then body. Only variables actually found are present in the result.
    """
    metadata = context.metadata or {}
    text = "\n".join(part for part in (context.subject, context.body) if part)
    variables: dict[str, str] = {}

    name = _clean_name(_meta_str(metadata, "first_name"))
    if name is None:
        name = _clean_name(_meta_str(metadata, "customer_name", "name"))
    if name is None:
        name = _name_from_signature(context.body or "")
    if name:
        variables["first_name"] = name

    last4 = _meta_str(metadata, "card_last4", "card_last_four")
    if last4 is not None and re.fullmatch(r"\d{4}", last4) is None:
        last4 = None
    if last4 is None:
        last4 = _find_last4(text)
    if last4:
        variables["card_last4"] = last4

    amount_currency = _find_amount(text)
    if amount_currency:
        variables["amount"] = amount_currency[0]

    meta_currency = _meta_str(metadata, "currency")
    if meta_currency and meta_currency.upper() in _CURRENCY_CODES:
        variables["currency"] = meta_currency.upper()
    elif amount_currency:
        variables["currency"] = amount_currency[1]
    else:
        code = _CODE_RE.search(text)
        word = _WORD_RE.search(text)
        if code:
            variables["currency"] = code.group(1)
        elif word:
            variables["currency"] = _CURRENCY_WORDS[word.group(1).lower()]

    found_date = _find_date(text)
    if found_date:
        variables["date"] = found_date
    return variables
