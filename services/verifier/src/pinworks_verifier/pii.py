"""PII: card numbers, IBANs, account numbers, emails and phone numbers the customer did not write.

A draft may repeat what the customer wrote and the bank's own published contact details;
anything else of that kind in a draft is either leaked from another record or invented.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.result import CheckResult

CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(?0?\d{2,4}\)?[ .-]?)\d{3,4}[ .-]?\d{3,4}(?!\w)")
SORT_CODE_ACCOUNT = re.compile(
    r"\b(?:sort code\s*)?\d{2}-\d{2}-\d{2}\b|\b(?:account(?: number)?|acct|a/c)\s*(?:no\.?|number|#)?"
    r"\s*:?\s*(\d{6,12})\b", re.IGNORECASE)
BARE_ACCOUNT = re.compile(r"(?<![\d£$€.,])\d{8}(?![\d%])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


_NUMBER_TOKEN = re.compile(r"(?<![\w+])\+?\d+(?:[ .-]?\(?\d+\)?)*(?!\w)")
_DIGIT_RUN = re.compile(r"\d+")


def number_tokens(text: str, found: Iterable[tuple[str, str]] | None = None) -> set[str]:
    """Every number written in ``text`` as a whole token: each run of digits and each
    contiguous stretch of runs joined by single separators ("07700 900123", "20-00-00" in
    "20-00-00 43218765"), and the normalised value of every PII item in it. A draft's number
    is allowed when it equals one of these, never because its digits happen to occur
    somewhere in the text. `found`: `find_pii(text)` when the caller already has it."""
    tokens = {value for _, value in (find_pii(text) if found is None else found)}
    for match in _NUMBER_TOKEN.finditer(text):
        runs = _DIGIT_RUN.findall(match.group(0))
        for start in range(len(runs)):
            for end in range(start + 1, min(len(runs), start + 8) + 1):
                digits = "".join(runs[start:end])
                tokens.update({digits, digits.removeprefix("44").lstrip("0")})
    return tokens


def find_pii(text: str) -> list[tuple[str, str]]:
    """(kind, normalised value) for every PII item found in ``text``."""
    found: list[tuple[str, str]] = []
    for match in IBAN.finditer(text):
        if iban_valid(match.group(0)):
            found.append(("IBAN", match.group(0).replace(" ", "").upper()))
    text = IBAN.sub(" ", text)  # the digits of an IBAN-shaped string are not a card number
    for match in CARD.finditer(text):
        digits = digits_of(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(("card number", digits))
    for match in EMAIL.finditer(text):
        found.append(("email address", match.group(0).lower()))
    # long digit runs (valid or not) and emails are masked before looking for phone and
    # account numbers, so a part of one is never reported as another
    masked = EMAIL.sub(" ", CARD.sub(" ", IBAN.sub(" ", text)))
    def phone(match: re.Match[str]) -> str:
        digits = digits_of(match.group(0))
        if not 9 <= len(digits) <= 15:
            return match.group(0)
        found.append(("phone number", digits.removeprefix("44").lstrip("0")))
        return " "

    masked = PHONE.sub(phone, masked)
    for match in SORT_CODE_ACCOUNT.finditer(masked):
        value = match.group(1) or match.group(0)
        found.append(("account number", digits_of(value)))
    masked = SORT_CODE_ACCOUNT.sub(" ", masked)
    for match in BARE_ACCOUNT.finditer(masked):
        found.append(("account number", match.group(0)))
    return found


class PiiCheck:
    """Fails on personal data in the draft that neither the customer wrote nor the bank
    publishes (`allowed`: e.g. the bank's phone number and support addresses).

    A phone or account number is also allowed when it equals, as a whole token, a number in
    the ticket (subject, body, metadata) or in the passages the draft was written from."""

    name = "pii"
    version = "pii-2"

    def __init__(self, allowed: Iterable[str] = ("+44 20 7946 0321",)) -> None:
        self.allowed = {value for item in allowed for _, value in find_pii(item)}

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        if draft is None:
            return CheckResult(self.name, self.version, True)
        ticket = envelope.ticket
        customer_text = " ".join(filter(None, [ticket.subject, ticket.body]))
        customer_text += " " + " ".join(str(v) for v in ticket.metadata.values())
        customer_pii = find_pii(customer_text)
        written = {value for _, value in customer_pii}
        context = " ".join(str(p.get("text", "")) for p in draft.details.get("passages", [])
                           if isinstance(p, dict))
        given = number_tokens(customer_text, customer_pii) | number_tokens(context)
        reasons: list[str] = []
        kinds: list[str] = []
        for kind, value in find_pii(draft.answer):
            if value in written or value in self.allowed:
                continue
            if kind in ("account number", "phone number") and value in given:
                continue
            kinds.append(kind)
            reasons.append(f"pii: the draft contains a {kind} the customer did not write "
                           f"(ending {value[-4:]})")
        return CheckResult(self.name, self.version, not reasons, tuple(dict.fromkeys(reasons)),
                           {"kinds": sorted(set(kinds))})
