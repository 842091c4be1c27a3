"""Answer templates for Larkspur Bank's 77 intents and the code that fills them from a ticket.

Everything here is pure: the only I/O is reading the packaged ``intents.yaml``. The YAML is
validated on load so a broken template fails at start-up, not in front of a customer, and the
renderer only includes a sentence when every variable it needs was found in the ticket.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "INTENTS",
    "PLACEHOLDERS",
    "RenderedAnswer",
    "TemplateBook",
    "TemplateContext",
    "TemplateError",
    "extract_variables",
]

INTENTS: tuple[str, ...] = (
    "card_arrival",
    "card_linking",
    "exchange_rate",
    "card_payment_wrong_exchange_rate",
    "extra_charge_on_statement",
    "pending_cash_withdrawal",
    "fiat_currency_support",
    "card_delivery_estimate",
    "automatic_top_up",
    "card_not_working",
    "exchange_via_app",
    "lost_or_stolen_card",
    "age_limit",
    "pin_blocked",
    "contactless_not_working",
    "top_up_by_bank_transfer_charge",
    "pending_top_up",
    "cancel_transfer",
    "top_up_limits",
    "wrong_amount_of_cash_received",
    "card_payment_fee_charged",
    "transfer_not_received_by_recipient",
    "supported_cards_and_currencies",
    "getting_virtual_card",
    "card_acceptance",
    "top_up_reverted",
    "balance_not_updated_after_cheque_or_cash_deposit",
    "card_payment_not_recognised",
    "edit_personal_details",
    "why_verify_identity",
    "unable_to_verify_identity",
    "get_physical_card",
    "visa_or_mastercard",
    "topping_up_by_card",
    "disposable_card_limits",
    "compromised_card",
    "atm_support",
    "direct_debit_payment_not_recognised",
    "passcode_forgotten",
    "declined_cash_withdrawal",
    "pending_card_payment",
    "lost_or_stolen_phone",
    "request_refund",
    "declined_transfer",
    "Refund_not_showing_up",
    "declined_card_payment",
    "pending_transfer",
    "terminate_account",
    "card_swallowed",
    "transaction_charged_twice",
    "verify_source_of_funds",
    "transfer_timing",
    "reverted_card_payment?",
    "change_pin",
    "beneficiary_not_allowed",
    "transfer_fee_charged",
    "receiving_money",
    "failed_transfer",
    "transfer_into_account",
    "verify_top_up",
    "getting_spare_card",
    "top_up_by_cash_or_cheque",
    "order_physical_card",
    "virtual_card_not_working",
    "wrong_exchange_rate_for_cash_withdrawal",
    "get_disposable_virtual_card",
    "top_up_failed",
    "balance_not_updated_after_bank_transfer",
    "cash_withdrawal_not_recognised",
    "exchange_charge",
    "top_up_by_card_charge",
    "activate_my_card",
    "cash_withdrawal_charge",
    "card_about_to_expire",
    "apple_pay_or_google_pay",
    "verify_my_identity",
    "country_support",
)
"""The BANKING77 label set, spelled exactly as the classifier emits it."""

PLACEHOLDERS: frozenset[str] = frozenset({"first_name", "amount", "date", "card_last4", "currency"})
"""The only variables a template may reference."""

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REQUIRED_TERM_RE = re.compile(r"^[a-z0-9][a-z0-9 '\-]*[a-z0-9]$")


class TemplateError(ValueError):
    """The template YAML is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class TemplateContext:
    """What the renderer may look at: the ticket text plus metadata from the intake."""

    body: str
    subject: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedAnswer:
    """A customer-ready answer plus the provenance the audit log needs."""

    text: str
    template_id: str
    variables: Mapping[str, str]


@dataclass(frozen=True)
class _Part:
    text: str
    when: tuple[str, ...] = ()
    otherwise: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class _Template:
    intent: str
    template_id: str
    required_terms: tuple[str, ...]
    parts: tuple[_Part, ...]


# --------------------------------------------------------------------------- YAML loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain PyYAML silently overwrites."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise TemplateError(
                f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                "every intent must appear exactly once"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER_RE.findall(text))


def _check_braces(text: str, where: str) -> None:
    """Reject stray braces so a typo like ``{amount`` cannot leak to a customer."""
    stripped = _PLACEHOLDER_RE.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise TemplateError(f"{where}: unbalanced or malformed brace in {text[:60]!r}")
    unknown = _placeholders(text) - PLACEHOLDERS
    if unknown:
        raise TemplateError(
            f"{where}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}"
        )


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{where}: expected a non-empty string")
    return " ".join(value.split())


def _parse_part(raw: Any, where: str) -> _Part:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: each part must be a mapping with 'text'")
    extra = set(raw) - {"text", "when", "otherwise", "inline"}
    if extra:
        raise TemplateError(f"{where}: unexpected key(s) {sorted(extra)}")
    text = _as_str(raw.get("text"), f"{where}.text")
    _check_braces(text, where)
    when_raw = raw.get("when", [])
    if isinstance(when_raw, str):
        when_raw = [when_raw]
    if not isinstance(when_raw, list) or not all(isinstance(w, str) for w in when_raw):
        raise TemplateError(f"{where}.when: expected a list of variable names")
    when = tuple(when_raw)
    unknown = set(when) - PLACEHOLDERS
    if unknown:
        raise TemplateError(f"{where}.when: unknown variable(s) {sorted(unknown)}")
    unguarded = _placeholders(text) - set(when)
    if unguarded:
        raise TemplateError(
            f"{where}: placeholder(s) {sorted(unguarded)} used without being listed in 'when', "
            "so they could reach a customer unfilled"
        )
    otherwise = raw.get("otherwise")
    if otherwise is not None:
        if not when:
            raise TemplateError(f"{where}: 'otherwise' only makes sense with 'when'")
        otherwise = _as_str(otherwise, f"{where}.otherwise")
        _check_braces(otherwise, f"{where}.otherwise")
        if _placeholders(otherwise):
            raise TemplateError(f"{where}.otherwise: must not contain placeholders")
    inline = raw.get("inline", False)
    if not isinstance(inline, bool):
        raise TemplateError(f"{where}.inline: expected true or false")
    return _Part(text=text, when=when, otherwise=otherwise, inline=inline)


def _entry_hash(entry: Any) -> str:
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]


def _parse_intent(intent: str, raw: Any) -> _Template:
    where = f"intent {intent!r}"
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: expected a mapping with 'required_terms' and 'parts'")
    extra = set(raw) - {"required_terms", "parts", "title"}
    if extra:
        raise TemplateError(f"{where}: unexpected key(s) {sorted(extra)}")
    terms_raw = raw.get("required_terms")
    if not isinstance(terms_raw, list) or not 2 <= len(terms_raw) <= 5:
        raise TemplateError(f"{where}: 'required_terms' must list 2-5 terms")
    terms: list[str] = []
    for term in terms_raw:
        if not isinstance(term, str) or not _REQUIRED_TERM_RE.match(term):
            raise TemplateError(f"{where}: required term {term!r} must be a lowercase word/phrase")
        terms.append(term)
    parts_raw = raw.get("parts")
    if not isinstance(parts_raw, list) or not parts_raw:
        raise TemplateError(f"{where}: 'parts' must be a non-empty list")
    parts = tuple(_parse_part(p, f"{where} part {i + 1}") for i, p in enumerate(parts_raw))
    if parts[0].inline:
        raise TemplateError(f"{where} part 1: the first part cannot be inline")
    template = _Template(
        intent=intent,
        template_id=f"{intent}@{_entry_hash(raw)}",
        required_terms=tuple(terms),
        parts=parts,
    )
    bare = _compose(template, {}).lower()
    missing = [t for t in terms if t not in bare]
    if missing:
        raise TemplateError(
            f"{where}: required term(s) {missing} do not appear in the answer when no variables are available"
        )
    return template


def _parse_book(data: Any, expected: Iterable[str]) -> tuple[str, str, str, dict[str, _Template]]:
    if not isinstance(data, Mapping):
        raise TemplateError("template file: top level must be a mapping")
    greeting = data.get("greeting")
    if not isinstance(greeting, Mapping):
        raise TemplateError("template file: 'greeting' must map 'with_name' and 'without_name'")
    with_name = _as_str(greeting.get("with_name"), "greeting.with_name")
    without_name = _as_str(greeting.get("without_name"), "greeting.without_name")
    if _placeholders(with_name) != {"first_name"}:
        raise TemplateError("greeting.with_name: must use exactly the {first_name} placeholder")
    _check_braces(with_name, "greeting.with_name")
    _check_braces(without_name, "greeting.without_name")
    if _placeholders(without_name):
        raise TemplateError("greeting.without_name: must not contain placeholders")
    sign_off_raw = data.get("sign_off")
    if not isinstance(sign_off_raw, str) or not sign_off_raw.strip():
        raise TemplateError("sign_off: expected a non-empty string")
    sign_off = sign_off_raw.strip()
    _check_braces(sign_off, "sign_off")
    if _placeholders(sign_off):
        raise TemplateError("sign_off: must not contain placeholders")
    intents_raw = data.get("intents")
    if not isinstance(intents_raw, Mapping):
        raise TemplateError("template file: 'intents' must be a mapping of intent -> entry")
    expected_set = set(expected)
    unknown = sorted(set(intents_raw) - expected_set, key=str)
    if unknown:
        raise TemplateError(f"template file: unknown intent(s) {unknown}")
    missing = sorted(expected_set - set(intents_raw))
    if missing:
        raise TemplateError(f"template file: missing intent(s) {missing}")
    templates = {name: _parse_intent(name, raw) for name, raw in intents_raw.items()}
    return with_name, without_name, sign_off, templates


# --------------------------------------------------------------------------- rendering


def _fill(text: str, variables: Mapping[str, str], used: set[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        used.add(name)
        return variables[name]

    return _PLACEHOLDER_RE.sub(replace, text)


def _compose(template: _Template, variables: Mapping[str, str], used: set[str] | None = None) -> str:
    """Join the parts into paragraphs, dropping any whose variables are not available."""
    used = used if used is not None else set()
    paragraphs: list[str] = []
    for part in template.parts:
        if all(variables.get(v) for v in part.when):
            piece = _fill(part.text, variables, used)
        elif part.otherwise is not None:
            piece = part.otherwise
        else:
            continue
        if part.inline and paragraphs:
            paragraphs[-1] = f"{paragraphs[-1]} {piece}"
        else:
            paragraphs.append(piece)
    return "\n\n".join(paragraphs)


def _package_yaml() -> bytes:
    return resources.files("pinworks_specialists").joinpath("templates").joinpath("intents.yaml").read_bytes()


class TemplateBook:
    """The validated set of intent templates; immutable once loaded."""

    version: str

    def __init__(
        self,
        version: str,
        greeting_with_name: str,
        greeting_without_name: str,
        sign_off: str,
        templates: Mapping[str, _Template],
    ) -> None:
        self.version = version
        self._greeting_with_name = greeting_with_name
        self._greeting_without_name = greeting_without_name
        self._sign_off = sign_off
        self._templates = dict(templates)

    @classmethod
    def load(cls, path: Path | None = None) -> TemplateBook:
        """Read and validate a template file; ``None`` means the packaged ``intents.yaml``."""
        raw = _package_yaml() if path is None else Path(path).read_bytes()
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes, expected: Iterable[str] = INTENTS) -> TemplateBook:
        """Build a book from YAML bytes; separate from :meth:`load` so tests need no files."""
        try:
            data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise TemplateError(f"template file is not valid YAML: {exc}") from exc
        with_name, without_name, sign_off, templates = _parse_book(data, expected)
        version = "templates-" + hashlib.sha256(raw).hexdigest()[:8]
        return cls(version, with_name, without_name, sign_off, templates)

    def intents(self) -> frozenset[str]:
        """Intents this book can answer."""
        return frozenset(self._templates)

    def required_terms(self, intent: str) -> tuple[str, ...]:
        """Terms any correct answer for ``intent`` must mention; empty for an unknown intent."""
        template = self._templates.get(intent)
        return template.required_terms if template else ()

    def greeting(self, context: TemplateContext) -> str:
        """The greeting line, with the customer's first name when the ticket gives one."""
        variables = extract_variables(context)
        if variables.get("first_name"):
            return _fill(self._greeting_with_name, variables, set())
        return self._greeting_without_name

    @property
    def sign_off(self) -> str:
        return self._sign_off

    def render(self, intent: str, context: TemplateContext) -> RenderedAnswer | None:
        """Fill the intent's template from the ticket; ``None`` when the intent is unknown."""
        template = self._templates.get(intent)
        if template is None:
            return None
        variables = extract_variables(context)
        used: set[str] = set()
        body = _compose(template, variables, used)
        if variables.get("first_name"):
            greeting = _fill(self._greeting_with_name, variables, used)
        else:
            greeting = self._greeting_without_name
        text = f"{greeting}\n\n{body}\n\n{self._sign_off}"
        return RenderedAnswer(
            text=text,
            template_id=template.template_id,
            variables={name: variables[name] for name in sorted(used)},
        )


# --------------------------------------------------------------------------- variable extraction

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
