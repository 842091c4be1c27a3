"""Component tier of the verifier through its FastStream app: `create_app` (with its real
checks) wired to the in-memory ledger, driven by FastStream's TestNatsBroker."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pinworks_common.ledger.memory import (
    AppRun,
    MemoryBooks,
    drive_service,
    record_upstream,
    without_nonce,
)
from pinworks_contracts import messages, subjects
from pinworks_verifier.app import create_app
from pinworks_verifier.settings import VerifierSettings


def drafted(ticket_id: str) -> bytes:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My new card has not arrived yet, when will it come?"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=messages.Classification(
            intent="card_arrival", confidence=0.95, out_of_scope=False, model_version="m",
            alternatives=[messages.IntentScore(intent="card_arrival", score=0.95)]),
        draft=messages.Draft(handler="template", handler_version="1", cost_usd=Decimal(0),
                    answer="Hello, your new card usually arrives within 5 working days of "
                    "ordering. If it has not arrived after 7 working days, let us know."),
    ).model_dump_json().encode()


def run(books: MemoryBooks, *deliveries: tuple[bytes, int, int]) -> AppRun:
    """Deliver the drafts, each recorded upstream first (the verifier trusts only that)."""
    for payload, _, _ in deliveries:
        envelope = messages.TicketEnvelope.model_validate_json(payload)
        if envelope.draft is not None:
            record_upstream(books, envelope)
    return drive_service(create_app, VerifierSettings, books,
                         subject=subjects.DRAFTED, stream=subjects.WORK_STREAM,
                         durable="verifier", deliveries=deliveries,
                         outputs=[(subjects.outcome_status_subjects("resolved"), subjects.OUTCOMES_STREAM),
                                  (subjects.ESCALATION_REQUESTED, subjects.WORK_STREAM)])


def test_a_draft_gets_its_verdict_once_and_a_redelivery_repeats_it() -> None:
    books = MemoryBooks()
    run_ = run(books, (drafted("W-1"), 1, 1), (drafted("W-1"), 1, 2))
    [verdict] = [row["output"] for row in books.store.rows("decisions")
                 if row["stage"] == "verifier"]
    resolved = (subjects.outcome_subject("resolved", "support"), "W-1:outcome:automation")
    expected = resolved if verdict["passed"] else (subjects.ESCALATION_REQUESTED, "W-1:escalate")
    assert [(subject, without_nonce(msg_id)) for subject, msg_id, _ in run_.published] == [expected] * 2
    assert run_.published[0][1] == run_.published[1][1]
    assert run_.published[0][2] == run_.published[1][2]
    assert len(run_.acked) == 2
    assert len(books.store.rows("outcomes")) == (1 if verdict["passed"] else 0)


def test_a_poison_message_is_dead_lettered_and_escalated_and_the_next_one_flows() -> None:
    envelope = messages.TicketEnvelope.model_validate_json(drafted("W-2"))
    no_draft = envelope.model_copy(update={"draft": None}).model_dump_json().encode()
    run_ = run(MemoryBooks(), (no_draft, 7, 1), (drafted("W-3"), 8, 1))
    ids = [without_nonce(msg_id) for _, msg_id, _ in run_.published]
    assert sorted(ids[:2]) == ["W-2:escalate", "deadletter:verifier:7"]
    assert ids[2] in ("W-3:outcome:automation", "W-3:escalate")
    assert len(run_.acked) == 2
