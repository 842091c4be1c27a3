"""Specialist handlers: each turns a routed ticket into a draft, or declines with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from pinworks_contracts.messages import Draft, TicketEnvelope
from pinworks_specialists.settings import Price
from pinworks_specialists.templating import TemplateBook, TemplateContext

DeclineKind = Literal["declined", "unavailable", "error", "timeout"]


@dataclass(frozen=True)
class Declined:
    """No draft: the ticket goes down its route's fallback chain, or to a person.

    `kind` says why: the handler judged it could not answer well (`declined`), has no backend
    (`unavailable`), its backend failed (`error`) or did not answer in time (`timeout`).
    `cost_usd` is what was spent anyway (e.g. an LLM completion whose citations were invented).
    """

    reason: str
    kind: DeclineKind = "declined"
    cost_usd: Decimal = Decimal(0)
    details: dict[str, Any] = field(default_factory=dict)


class Handler(Protocol):
    """A specialist: turns a routed ticket into a draft, or declines with a reason.

    `handle` is a coroutine so a handler calling a model server never blocks the event loop; the
    stage runs a batch's calls concurrently. `close` releases connections at shutdown."""

    name: str
    version: str

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined: ...

    async def close(self) -> None: ...


@runtime_checkable
class LocalHandler(Handler, Protocol):
    """A handler that decides in this process, at once (templates, the help centre): the stage
    calls `handle_now` inside the batch's transaction instead of awaiting `handle` before it."""

    def handle_now(self, envelope: TicketEnvelope) -> Draft | Declined: ...


class TemplateHandler:
    """Answers from the reviewed template for the classified intent, with the ticket's details."""

    name = "template"

    def __init__(self, book: TemplateBook, price: Price) -> None:
        self.book = book
        self.price = price
        self.version = book.version

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        return self.handle_now(envelope)

    def handle_now(self, envelope: TicketEnvelope) -> Draft | Declined:
        """The template answer, computed synchronously (pure and fast)."""
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

    async def close(self) -> None:
        return None


def cost_of(price: Price, input_tokens: int = 0, output_tokens: int = 0) -> Decimal:
    return (
        price.per_call
        + price.per_1k_input_tokens * Decimal(input_tokens) / 1000
        + price.per_1k_output_tokens * Decimal(output_tokens) / 1000
    )
