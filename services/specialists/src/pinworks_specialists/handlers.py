"""Specialist handlers: each turns a routed ticket into a draft, or declines with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from pinworks_common.contracts import Draft, TicketEnvelope

from pinworks_specialists.settings import Price
from pinworks_specialists.templating import TemplateBook, TemplateContext


@dataclass(frozen=True)
class Declined:
    reason: str


class Handler(Protocol):
    name: str
    version: str

    def handle(self, envelope: TicketEnvelope) -> Draft | Declined: ...


class TemplateHandler:
    """Answers from the reviewed template for the classified intent, with the ticket's details."""

    name = "template"

    def __init__(self, book: TemplateBook, price: Price) -> None:
        self.book = book
        self.price = price
        self.version = book.version

    def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        assert envelope.classification is not None
        intent = envelope.classification.intent
        ticket = envelope.ticket
        rendered = self.book.render(
            intent, TemplateContext(body=ticket.body, subject=ticket.subject,
                                    metadata=ticket.metadata),
        )
        if rendered is None:
            return Declined(f"no template for intent {intent}")
        return Draft(
            handler=self.name,
            handler_version=self.version,
            answer=rendered.text,
            cost_usd=self.price.per_call,
            required_terms=list(self.book.required_terms(intent)),
            details={"template_id": rendered.template_id, "variables": dict(rendered.variables)},
        )


def cost_of(price: Price, input_tokens: int = 0, output_tokens: int = 0) -> Decimal:
    return (
        price.per_call
        + price.per_1k_input_tokens * Decimal(input_tokens) / 1000
        + price.per_1k_output_tokens * Decimal(output_tokens) / 1000
    )
