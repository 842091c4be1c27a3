"""The escalation stage's in-process step: the queue decision of a ticket routed to a person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pinworks_contracts.messages import (
    CustomerSignal,
    CustomerState,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_escalation.inprocess import escalate_step


def envelope(ticket_id: str, handler: str, state: CustomerState | None) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="I will call my lawyer about this card",
                                metadata={"tier": "premium"}),
        trace_id="0" * 32, received_at=datetime.now(UTC), customer_state=state,
        route=RouteDecision(handler=handler, rule="r", reason="because", policy_version="p"))


def test_a_ticket_routed_to_a_person_gets_its_queue_decision_and_an_automated_one_none() -> None:
    rows: list[dict[str, Any]] = []
    step = escalate_step(rows.append)
    threat = CustomerState(signals=[CustomerSignal(kind="legal_threat", evidence="lawyer")],
                           sentiment=-0.2, version="v")
    calm = CustomerState(signals=[], sentiment=0.1, version="v")
    batch = [envelope("T-1", "human", threat), envelope("T-2", "template", threat),
             envelope("T-3", "human", calm)]
    before = datetime.now(UTC)
    assert step(batch) == batch                                 # passes on unchanged
    assert [row["ticket_id"] for row in rows] == ["T-1", "T-3"]  # never T-2
    urgent, routine = rows
    assert urgent["priority"] == 100 and "premium tier" in urgent["context"]["priority_because"]
    assert urgent["reasons"][0] == "routed to a person by rule r: because"
    assert urgent["sla_due_at"] - before <= timedelta(minutes=31)  # 1 h, halved for premium
    # The envelope's reading decides, as the recorded one does on the platform: the text's
    # "lawyer" does not count against a calm reading.
    assert routine["priority"] == 60 and routine["context"]["priority_because"] == ["premium tier"]
    assert routine["sla_due_at"] - before > timedelta(hours=11)


def test_without_a_reading_the_step_reads_the_text_as_the_stage_does() -> None:
    rows: list[dict[str, Any]] = []
    escalate_step(rows.append)([envelope("T-4", "human", None)])
    assert rows[0]["priority"] == 100
    assert rows[0]["context"]["customer_state"]["signals"][0]["kind"] == "legal_threat"
