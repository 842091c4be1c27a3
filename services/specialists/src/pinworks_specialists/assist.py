"""Agent assist: for every escalated ticket, the material of a suggested reply.

The escalation service asks on `pinworks.work.assist`; this stage fills the best-matching
templates with the ticket's variables and retrieves the knowledge-base passages with their
citations, and records them as a `specialist` decision (key `assist`) that the console reads.
Nothing here is sent to a customer: an agent inserts, edits and sends it. The material comes
from the ticket as the escalation stage queued it (its queue row: the recorded ticket and
classification), never from the request, which names only which ticket and attempt; a request
for an attempt the queue does not hold is refused (audited, see `pinworks_common.provenance`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pinworks_common import provenance
from pinworks_common.ledger import Decision, Entries, Ledger, keys
from pinworks_common.stage import Delivery, Work, decode_model
from pinworks_contracts.messages import EscalationRequest, TicketEnvelope
from pinworks_contracts.subjects import ASSIST_HANDLER, Stage
from pinworks_specialists.kb import KnowledgeBase
from pinworks_specialists.knowledge import compose_answer, retrieve, ticket_query
from pinworks_specialists.templating import TemplateBook, TemplateContext

MAX_TEMPLATES = 3
"""Templates offered: the classified intent's and its runners-up'."""


def suggest(book: TemplateBook, kb: KnowledgeBase | None, envelope: TicketEnvelope
            ) -> dict[str, Any]:
    """Templates for the likeliest intents, best first, and the passages retrieval found."""
    ticket = envelope.ticket
    context = TemplateContext(body=ticket.body, subject=ticket.subject, metadata=ticket.metadata)
    classification = envelope.classification
    candidates: list[tuple[str, float]] = []
    if classification is not None:
        candidates.append((classification.intent, classification.confidence))
        candidates += [(alt.intent, alt.score) for alt in classification.alternatives]
    templates: list[dict[str, Any]] = []
    for intent, score in candidates:
        if len(templates) >= MAX_TEMPLATES or any(t["intent"] == intent for t in templates):
            continue
        rendered = book.render(intent, context)
        if rendered is not None:
            templates.append({"intent": intent, "score": round(float(score), 4),
                              "template_id": rendered.template_id, "text": rendered.text,
                              "variables": dict(rendered.variables)})
    passages: list[dict[str, Any]] = []
    article: dict[str, Any] | None = None
    kb_reply = None
    if kb is not None:
        found = retrieve(kb, ticket_query(ticket.subject, ticket.body),
                         classification.intent if classification else None)
        if found.article_id is not None and found.passages:
            article = {"article_id": found.article_id, "title": found.title,
                       "coverage": round(found.coverage, 3)}
            passages = [{"passage_id": p.passage_id, "article_id": p.article_id,
                         "title": p.title, "text": p.text, "score": round(p.score, 3)}
                        for p in found.passages]
            kb_reply = compose_answer(book.greeting(context), found.passages, book.sign_off)
    return {"templates": templates, "article": article, "passages": passages,
            "kb_reply": kb_reply, "book_version": book.version,
            "kb_version": kb.version if kb is not None else None}


class AssistStage:
    stage = Stage.SPECIALIST.value
    component = f"specialist:{ASSIST_HANDLER}"

    def __init__(self, book: TemplateBook, kb: KnowledgeBase | None) -> None:
        self.book = book
        self.kb = kb
        self.version = f"assist-1[{book.version},{kb.version if kb else 'no-kb'}]"

    def decode(self, delivery: Delivery) -> EscalationRequest:
        request: EscalationRequest = decode_model(EscalationRequest, delivery)
        return request

    async def apply(self, ledger: Ledger, work: Sequence[Work[EscalationRequest]]) -> Entries:
        entries = Entries()
        queue = await provenance.recorded_queue(
            ledger, {item.value.envelope.ticket.ticket_id for item in work})
        refusals = provenance.Refusals(self.stage)
        for item in work:
            ticket_id, attempt = item.value.envelope.ticket.ticket_id, item.value.envelope.attempt
            refused = provenance.queued_refusal(ticket_id, attempt, queue.get(ticket_id))
            if refused is not None:
                refusals.refuse(ticket_id, item.delivery, refused)
                continue
            envelope = TicketEnvelope.model_validate(queue[ticket_id].envelope)
            started = time.perf_counter()
            output = suggest(self.book, self.kb, envelope)
            found = [f"{len(output['templates'])} template(s)",
                     f"{len(output['passages'])} passage(s)"]
            entries.decisions.append(Decision(
                envelope.ticket.ticket_id, self.stage, keys.assist(envelope.attempt),
                self.component, self.version,
                inputs={"intent": envelope.classification.intent
                        if envelope.classification else None,
                        "automation_attempt": envelope.attempt},
                output=output,
                reason="suggested reply material for the agent: " + ", ".join(found),
                latency_ms=(time.perf_counter() - started) * 1000, trace_id=item.trace_id,
            ))
        entries.extend(refusals.audited())
        return entries
