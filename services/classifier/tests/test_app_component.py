"""Component tier of the classifier through its FastStream app: `create_app` (with the shipped
model) wired to the in-memory ledger, driven by FastStream's TestNatsBroker."""

from __future__ import annotations

import json

from pinworks_classifier.app import create_app
from pinworks_classifier.settings import ClassifierSettings
from pinworks_common.ledger.memory import AppRun, MemoryBooks, drive_service, without_nonce
from pinworks_contracts import subjects
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import TicketEnvelope


def submission(ticket_id: str, **fields: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "business_unit": "retail",
                       "body": "My new card has still not arrived, when will it come?",
                       **fields}).encode()


def run(books: MemoryBooks, *deliveries: tuple[bytes, int, int]) -> AppRun:
    return drive_service(create_app, ClassifierSettings, books,
                         subject=subjects.submission_subject(DEFAULT_PLATFORM),
                         stream=subjects.TICKETS_STREAM, durable="classifier", deliveries=deliveries,
                         outputs=[(subjects.CLASSIFIED, subjects.WORK_STREAM),
                                  (subjects.outcome_status_subjects("rejected"), subjects.OUTCOMES_STREAM)])


def test_a_ticket_is_classified_once_and_a_redelivery_republishes_it() -> None:
    books = MemoryBooks()
    run_ = run(books, (submission("C-1"), 1, 1), (submission("C-1"), 1, 2))
    assert [(s, m) for s, m, _ in run_.published] == [(subjects.CLASSIFIED, "C-1:classified")] * 2
    assert run_.published[0][2] == run_.published[1][2]
    envelope = TicketEnvelope.model_validate_json(run_.published[0][2])
    assert envelope.classification is not None and envelope.classification.intent
    assert len(run_.acked) == 2
    assert len(books.store.rows("cost_ledger")) == 1


def test_a_malformed_submission_is_rejected_and_the_next_one_flows() -> None:
    run_ = run(MemoryBooks(), (json.dumps({"ticket_id": "C-2"}).encode(), 2, 1),
               (submission("C-3"), 3, 1))
    assert [(s, without_nonce(m)) for s, m, _ in run_.published] == [
        (subjects.outcome_subject("rejected", DEFAULT_PLATFORM), "C-2:outcome:rejected:2"),
        (subjects.CLASSIFIED, "C-3:classified")]
    assert len(run_.acked) == 2
