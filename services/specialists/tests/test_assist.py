"""The agent-assist material: filled templates for the likeliest intents and cited passages."""

from __future__ import annotations

from datetime import UTC, datetime

from pinworks_contracts.messages import Classification, IntentScore, TicketEnvelope, TicketSubmission
from pinworks_specialists.assist import MAX_TEMPLATES, suggest
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
