"""Component tier of the router through its FastStream app: `create_app` wired to the in-memory
ledger and driven by FastStream's TestNatsBroker (no NATS, no Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime

from pinworks_common.ledger.memory import AppRun, MemoryBooks, drive_service
from pinworks_contracts import messages, subjects
from pinworks_router.app import create_app
from pinworks_router.settings import RouterSettings


def classified(ticket_id: str, intent: str = "card_arrival") -> bytes:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My card has not arrived yet"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=messages.Classification(intent=intent, confidence=0.995, out_of_scope=False,
                                      model_version="m",
                                      alternatives=[messages.IntentScore(intent=intent, score=0.95)]),
    ).model_dump_json().encode()


def run(books: MemoryBooks, *deliveries: tuple[bytes, int, int]) -> AppRun:
    return drive_service(create_app, RouterSettings, books, ROUTER_POLICY_WATCH=False,
                         subject=subjects.CLASSIFIED, stream=subjects.WORK_STREAM, durable="router",
                         deliveries=deliveries,
                         outputs=[(subjects.routed_subject("*"), subjects.WORK_STREAM),
                                  (subjects.ESCALATION_REQUESTED, subjects.WORK_STREAM)])


def test_a_ticket_flows_to_its_handler_and_a_redelivery_repeats_the_stored_route() -> None:
    books = MemoryBooks()
    run_ = run(books, (classified("A-1"), 1, 1), (classified("A-1"), 1, 2))
    assert [(subject, msg_id) for subject, msg_id, _ in run_.published] == [
        (subjects.routed_subject("template"), "A-1:routed")] * 2
    assert run_.published[0][2] == run_.published[1][2], "the stored route, under the same id"
    assert len(run_.acked) == 2
    assert [row["decision_key"] for row in books.store.rows("decisions")] == ["route"]


def test_a_security_ticket_goes_to_a_person() -> None:
    run_ = run(MemoryBooks(), (classified("A-2", "compromised_card"), 3, 1))
    assert [(s, m) for s, m, _ in run_.published] == [(subjects.ESCALATION_REQUESTED, "A-2:escalate")]


def test_a_poison_message_is_dead_lettered_and_the_next_one_flows() -> None:
    books = MemoryBooks()
    run_ = run(books, (b"[" * 1000 + b"]" * 1000, 5, 1), (classified("A-3"), 6, 1))
    assert [msg_id for _, msg_id, _ in run_.published] == ["deadletter:router:5", "A-3:routed"]
    letter = messages.DeadLetter.model_validate_json(run_.published[0][2])
    assert (letter.stage, letter.stream_sequence) == ("router", 5)
    assert len(run_.acked) == 2
    assert [row["stream_seq"] for row in books.store.rows("dead_letters")] == [5]
