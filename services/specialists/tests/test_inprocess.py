"""The specialists' in-process assist step: suggestions for the tickets routed to a person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pinworks_contracts.messages import (
    Classification,
    IntentScore,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_specialists.inprocess import assist_step


def envelope(ticket_id: str, handler: str) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My card still has not arrived after two weeks, where is it?",
                                metadata={"first_name": "Alex"}),
        trace_id="0" * 32, received_at=datetime.now(UTC),
        classification=Classification(
            intent="card_arrival", confidence=0.6, out_of_scope=False, model_version="m",
            alternatives=[IntentScore(intent="card_arrival", score=0.6)]),
        route=RouteDecision(handler=handler, rule="r", reason="because", policy_version="p"))


def test_a_ticket_routed_to_a_person_gets_a_suggestion_and_an_automated_one_none() -> None:
    found: list[tuple[str, dict[str, Any]]] = []
    step = assist_step(lambda ticket_id, suggestion: found.append((ticket_id, suggestion)))
    batch = [envelope("T-1", "template"), envelope("T-2", "human"), envelope("T-3", "kb")]
    assert step(batch) == batch                                  # passes on unchanged
    assert [ticket_id for ticket_id, _ in found] == ["T-2"]
    suggestion = found[0][1]
    assert suggestion["templates"][0]["intent"] == "card_arrival"
    assert "Alex" in suggestion["templates"][0]["text"]
    assert suggestion["passages"] and suggestion["kb_reply"]
