"""The template specialist's step of `pinworks bench`'s in-process baseline: every envelope of a
batch answered from its intent's reviewed template, as the service's `TemplateHandler` does.

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
