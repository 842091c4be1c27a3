"""The specialists' steps of `pinworks bench`'s in-process baseline: the template step answers
every envelope of a batch from its intent's reviewed template, as the service's `TemplateHandler`
does; the assist step computes the agent's suggested-reply material (`assist.suggest`: filled
templates and knowledge-base passages) for each envelope the route sends to a person, as the
assist stage does for every ticket the escalation stage queues.

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pinworks_contracts.messages import TicketEnvelope


def template_step() -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """Load the template book once; the step drafts a batch (an intent without a template
    passes on without a draft)."""
    from pinworks_common.pricing import Price
    from pinworks_specialists.handlers import Declined, TemplateHandler
    from pinworks_specialists.settings import SpecialistSettings
    from pinworks_specialists.templating import TemplateBook

    handler = TemplateHandler(TemplateBook.load(),
                              SpecialistSettings().prices.get("template", Price()))

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        drafted = []
        for envelope in batch:
            draft = handler.handle_now(envelope)
            drafted.append(envelope if isinstance(draft, Declined)
                           else envelope.model_copy(update={"draft": draft}))
        return drafted

    return step


def assist_step(record: Callable[[str, dict[str, Any]], None] | None = None
                ) -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """Load the template book and the knowledge base once (as the assist stage does); the step
    hands `record` (if given; the bench keeps none) the ticket id and suggestion of every
    envelope of a batch routed to a person, and passes the batch on unchanged."""
    from pinworks_common.provenance import HUMAN
    from pinworks_specialists.assist import suggest
    from pinworks_specialists.kb import KnowledgeBase
    from pinworks_specialists.templating import TemplateBook

    book, kb = TemplateBook.load(), KnowledgeBase.load()

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        for envelope in batch:
            if envelope.route is None or envelope.route.handler != HUMAN:
                continue
            suggestion = suggest(book, kb, envelope)
            if record is not None:
                record(envelope.ticket.ticket_id, suggestion)
        return list(batch)

    return step
