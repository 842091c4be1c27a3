"""Component tier of the specialists through their FastStream app: `create_app` with the
template handler wired to the in-memory ledger, driven by FastStream's TestNatsBroker."""

from __future__ import annotations

from datetime import UTC, datetime

from pinworks_common.ledger.memory import AppRun, MemoryBooks, drive_service
from pinworks_contracts import messages, subjects
from pinworks_specialists.app import create_app
from pinworks_specialists.settings import SpecialistSettings


def routed(ticket_id: str) -> bytes:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My new card has not arrived yet"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=messages.Classification(intent="card_arrival", confidence=0.95, alternatives=[],
                                      out_of_scope=False, model_version="m"),
        route=messages.RouteDecision(handler="template", fallbacks=["human"], rule="r", reason="r",
                            policy_version="p"),
    ).model_dump_json().encode()


def run(books: MemoryBooks, *deliveries: tuple[bytes, int, int]) -> AppRun:
    return drive_service(create_app, SpecialistSettings, books, SPECIALISTS_HANDLERS="template",
                         subject=subjects.routed_subject("template"), stream=subjects.WORK_STREAM,
                         durable="specialist-template", deliveries=deliveries,
                         outputs=[(subjects.DRAFTED, subjects.WORK_STREAM),
                                  (subjects.ESCALATION_REQUESTED, subjects.WORK_STREAM)])


def test_a_ticket_is_drafted_once_and_a_redelivery_republishes_the_stored_draft() -> None:
    books = MemoryBooks()
    run_ = run(books, (routed("P-1"), 1, 1), (routed("P-1"), 1, 2))
    [decision] = books.store.rows("decisions")
    assert decision["decision_key"] == "draft:template" and "draft" in decision["output"]
    assert [(s, m) for s, m, _ in run_.published] == [(subjects.DRAFTED, "P-1:drafted")] * 2
    assert run_.published[0][2] == run_.published[1][2]
    assert len(run_.acked) == 2


def test_a_poison_message_is_dead_lettered_and_the_next_one_flows() -> None:
    run_ = run(MemoryBooks(), (b"\x00\x01", 4, 1), (routed("P-2"), 5, 1))
    ids = [m for _, m, _ in run_.published]
    assert ids == ["deadletter:specialist:4", "P-2:drafted"]
    assert len(run_.acked) == 2
