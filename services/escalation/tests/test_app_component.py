"""Component tier of the escalation service through its FastStream app: `create_app` wired to
the in-memory ledger, driven by FastStream's TestNatsBroker (the console is built, not served)."""

from __future__ import annotations

from datetime import UTC, datetime

from pinworks_common.ledger.memory import (
    AppRun,
    MemoryBooks,
    drive_service,
    record_upstream,
    without_nonce,
)
from pinworks_contracts import subjects
from pinworks_contracts.messages import EscalationRequest, TicketEnvelope, TicketSubmission
from pinworks_escalation.app import create_app
from pinworks_escalation.settings import EscalationSettings


def request(ticket_id: str) -> bytes:
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail", body="Help"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC))
    return EscalationRequest(envelope=envelope, source_stage="router",
                             reasons=["routed to a person"]).model_dump_json().encode()


def run(books: MemoryBooks, *deliveries: tuple[bytes, int, int]) -> AppRun:
    """Deliver the requests, each with its ticket and the router's hand-off recorded first."""
    for payload, _, _ in deliveries:
        if payload.startswith(b"{"):
            record_upstream(books, EscalationRequest.model_validate_json(payload).envelope,
                            escalated_by="router")
    return drive_service(create_app, EscalationSettings, books, subject=subjects.ESCALATION_REQUESTED,
                         stream=subjects.WORK_STREAM, durable="escalation", deliveries=deliveries,
                         outputs=[(subjects.outcome_status_subjects("escalated"), subjects.OUTCOMES_STREAM),
                                  (subjects.ASSIST_REQUESTED, subjects.WORK_STREAM)])


def test_a_ticket_is_queued_once_and_a_redelivery_repeats_the_stored_outcome() -> None:
    books = MemoryBooks()
    run_ = run(books, (request("Q-1"), 1, 1), (request("Q-1"), 1, 2))
    first, again = run_.published[:2], run_.published[2:]
    assert sorted(first) == sorted(again)
    assert {without_nonce(msg_id) for _, msg_id, _ in first} == {"Q-1:outcome:automation",
                                                                  "Q-1:assist"}
    assert len(run_.acked) == 2
    assert [len(books.store.rows(t)) for t in ("escalations", "outcomes")] == [1, 1]


def test_a_poison_message_is_dead_lettered_and_the_next_one_flows() -> None:
    run_ = run(MemoryBooks(), (b'"not a request"', 4, 1), (request("Q-2"), 5, 1))
    ids = [without_nonce(msg_id) for _, msg_id, _ in run_.published]
    assert ids[0] == "deadletter:escalation:4"
    assert set(ids[1:]) == {"Q-2:outcome:automation", "Q-2:assist"}
    assert len(run_.acked) == 2
