"""Answer templates for Larkspur Bank's 77 intents: the template book and its rendering.

Everything here is pure: the only I/O is reading the packaged ``intents.yaml``. The YAML is
validated on load (template_loading.py) so a broken template fails at start-up, not in front of
a customer, and the renderer only includes a sentence when every variable it needs was found in
the ticket (ticket_variables.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from pinworks_specialists.template_loading import UniqueKeyLoader, parse_book
from pinworks_specialists.template_parts import PLACEHOLDERS, Template, TemplateError, compose, fill
from pinworks_specialists.ticket_variables import TemplateContext, extract_variables

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



@dataclass(frozen=True)
class RenderedAnswer:
    """A customer-ready answer plus the provenance the audit log needs."""

    text: str
    template_id: str
    variables: Mapping[str, str]


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
        templates: Mapping[str, Template],
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
            data = yaml.load(raw.decode("utf-8"), Loader=UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise TemplateError(f"template file is not valid YAML: {exc}") from exc
        with_name, without_name, sign_off, templates = parse_book(data, expected)
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
        variables = context.variables
        if variables.get("first_name"):
            return fill(self._greeting_with_name, variables, set())
        return self._greeting_without_name

    @property
    def sign_off(self) -> str:
        return self._sign_off

    def render(self, intent: str, context: TemplateContext) -> RenderedAnswer | None:
        """Fill the intent's template from the ticket; ``None`` when the intent is unknown."""
        template = self._templates.get(intent)
        if template is None:
            return None
        variables = context.variables
        used: set[str] = set()
        body = compose(template, variables, used)
        if variables.get("first_name"):
            greeting = fill(self._greeting_with_name, variables, used)
        else:
            greeting = self._greeting_without_name
        text = f"{greeting}\n\n{body}\n\n{self._sign_off}"
        return RenderedAnswer(
            text=text,
            template_id=template.template_id,
            variables={name: variables[name] for name in sorted(used)},
        )

