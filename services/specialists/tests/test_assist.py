"""The agent-assist material: filled templates for the likeliest intents and cited passages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pinworks_common.ledger.memory import StageHarness
from pinworks_contracts.messages import (
    Classification,
    EscalationRequest,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import ASSIST_REQUESTED
from pinworks_specialists.assist import MAX_TEMPLATES, AssistStage, suggest
from pinworks_specialists.kb import KnowledgeBase
from pinworks_specialists.templating import TemplateBook


def envelope(body: str, intent: str, *alternatives: str) -> TicketEnvelope:
    scores = [IntentScore(intent=intent, score=0.6)] + [
        IntentScore(intent=alt, score=0.1) for alt in alternatives]
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T-1", business_unit="retail", body=body,
                                metadata={"first_name": "Alex"}),
        trace_id="0" * 32, received_at=datetime.now(UTC),
        classification=Classification(intent=intent, confidence=0.6, alternatives=scores,
                                      out_of_scope=False, model_version="m"))


def test_templates_are_filled_from_the_ticket_and_passages_carry_citations() -> None:
    book, kb = TemplateBook.load(), KnowledgeBase.load()
    found = suggest(book, kb, envelope(
        "My card still has not arrived after two weeks, where is it?",
        "card_arrival", "card_delivery_estimate", "card_arrival", "lost_or_stolen_card",
        "get_physical_card"))
    intents = [t["intent"] for t in found["templates"]]
    assert intents[0] == "card_arrival" and len(intents) == MAX_TEMPLATES
    assert len(set(intents)) == len(intents)
    assert "Alex" in found["templates"][0]["text"]
    assert found["templates"][0]["variables"]["first_name"] == "Alex"
    assert found["passages"] and all("#" in p["passage_id"] for p in found["passages"])
    assert found["kb_reply"] and found["passages"][0]["text"] in found["kb_reply"]
    assert found["book_version"] == book.version and found["kb_version"] == kb.version


def test_without_a_knowledge_base_only_templates_are_offered() -> None:
    found = suggest(TemplateBook.load(), None, envelope("Change my PIN", "change_pin"))
    assert [t["intent"] for t in found["templates"]] == ["change_pin"]
    assert found["passages"] == [] and found["kb_reply"] is None


def test_the_stage_suggests_from_the_queued_ticket_and_refuses_an_attempt_not_queued() -> None:
    """The material comes from the queue row the escalation stage wrote (its recorded ticket and
    classification), not from the request: a forged intent or body in the request changes
    nothing, and a request for an attempt the queue does not hold is refused and audited."""
    stage = StageHarness(AssistStage(TemplateBook.load(), KnowledgeBase.load()))
    queued = envelope("My card still has not arrived after two weeks, where is it?",
                      "card_arrival")
    asyncio.run(stage.books.store.insert_once("escalations", [{
        "ticket_id": "T-1", "attempt": 0, "status": "open",
        "context": {"envelope": queued.model_dump(mode="json")}}]))
    forged = queued.model_copy(update={
        "ticket": queued.ticket.model_copy(update={"body": "Please close my account now"}),
        "classification": queued.classification.model_copy(  # type: ignore[union-attr]
            update={"intent": "terminate_account"})})
    asked = stage.message(EscalationRequest(envelope=forged, source_stage="escalation",
                                            reasons=["queued"]), ASSIST_REQUESTED)
    later = stage.message(EscalationRequest(
        envelope=forged.model_copy(update={"attempt": 1}), source_stage="escalation",
        reasons=["queued"]), ASSIST_REQUESTED)
    stage.deliver(asked, later)
    assert asked.acked and later.acked
    [decision] = stage.rows("decisions", stage="specialist")
    assert decision["inputs"]["intent"] == "card_arrival"
    assert decision["output"]["templates"][0]["intent"] == "card_arrival"
    [refused] = [row for row in stage.rows("accountability") if row["action"] == "refuse"]
    assert refused["event_key"] == f"refused:{later.seq}"
    assert "the queue holds attempt 0" in refused["details"]["reason"]
