"""The pure decisions of `provenance`: which drafts and escalation requests the platform's
records account for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import REGISTRY

from pinworks_common import provenance
from pinworks_common.ledger import DecisionRef
from pinworks_common.ledger.memory import MemoryBooks
from pinworks_common.stage import Delivery
from pinworks_contracts import messages

TICKET = messages.TicketSubmission(ticket_id="P-1", business_unit="retail", body="recorded body")
RECORD = provenance.TicketRecord(TICKET, messages.Classification(
    intent="card_arrival", confidence=0.9, alternatives=[], out_of_scope=False,
    model_version="m"), "t" * 32)


def envelope(attempt: int = 0, body: str = "claimed body") -> messages.TicketEnvelope:
    return messages.TicketEnvelope(
        ticket=TICKET.model_copy(update={"body": body}), trace_id="0" * 32,
        received_at=datetime(2026, 1, 1, tzinfo=UTC), attempt=attempt,
        route=messages.RouteDecision(handler="kb", rule="r", reason="r", policy_version="v",
                                     fallbacks=["llm_small", "human"]),
        draft=messages.Draft(handler="kb", handler_version="1", answer="claimed",
                             cost_usd=Decimal(0), details={"entitlements": ["fee_waiver"]}))


def queue(attempt: int) -> provenance.QueueRecord:
    return provenance.QueueRecord(attempt, "returned", {"classification": {
        "intent": "lost_card", "confidence": 1.0, "alternatives": [], "out_of_scope": False,
        "model_version": "agent"}})


def kinds(refusal: provenance.Refusal | None) -> str | None:
    return refusal.kind if refusal else None


def test_a_draft_needs_an_accepted_ticket_a_started_attempt_and_a_recorded_draft() -> None:
    draft = {"draft": {"handler": "kb", "handler_version": "1", "answer": "stored",
                       "cost_usd": "0"}}
    assert kinds(provenance.draft_refusal(envelope(), None, None, draft)) == "unknown_ticket"
    assert kinds(provenance.draft_refusal(envelope(), RECORD, None, None)) == "unrecorded_draft"
    assert kinds(provenance.draft_refusal(envelope(), RECORD, None, {"declined": "x"})) == \
        "unrecorded_draft"
    assert kinds(provenance.draft_refusal(envelope(2), RECORD, queue(0), draft)) == \
        "unknown_attempt"
    assert provenance.draft_refusal(envelope(1), RECORD, queue(0), draft) is None
    assert provenance.draft_refusal(envelope(), RECORD, None, draft) is None


def test_the_recorded_envelope_carries_the_stored_ticket_classification_and_draft() -> None:
    stored = {"draft": {"handler": "kb", "handler_version": "1", "answer": "stored",
                        "cost_usd": "0", "details": {"passages": []}}}
    claimed = envelope().model_copy(update={"customer_state": messages.CustomerState(
        signals=[], sentiment=0.9, version="claimed")})
    reading = messages.CustomerState(signals=[messages.CustomerSignal(
        kind="legal_threat", evidence="ombudsman")], sentiment=-0.2, version="recorded")
    first = provenance.recorded_envelope(claimed, RECORD, None, stored, reading)
    assert first.ticket.body == "recorded body"
    assert first.draft is not None and first.draft.answer == "stored"
    assert "entitlements" not in first.draft.details
    assert first.classification == RECORD.classification
    assert first.customer_state == reading
    later = provenance.recorded_envelope(claimed, RECORD, queue(0), stored, None)
    assert later.customer_state is None  # no recorded reading: never the message's
    later = provenance.recorded_envelope(envelope(1), RECORD, queue(0), stored, None)
    assert later.classification is not None and later.classification.intent == "lost_card"


def request(attempt: int = 0, source: str = "verifier") -> messages.EscalationRequest:
    return messages.EscalationRequest(envelope=envelope(attempt), source_stage=source,
                                      reasons=["r"])


def test_an_escalation_needs_a_stored_step_of_its_stage_handing_the_attempt_to_a_person() -> None:
    failed = {DecisionRef("P-1", "verifier", "verify"): {"passed": False}}
    passed = {DecisionRef("P-1", "verifier", "verify"): {"passed": True}}
    routed = {DecisionRef("P-1", "router", "route"): {"handler": "human"}}
    chain = {DecisionRef("P-1", "specialist", "draft:llm_small@1"): {"next": "human"}}
    refusal = provenance.escalation_refusal
    assert kinds(refusal(request(), None, None, failed, set())) == "unknown_ticket"
    assert refusal(request(), RECORD, None, failed, set()) is None
    assert kinds(refusal(request(), RECORD, None, passed, set())) == "unrecorded_escalation"
    assert kinds(refusal(request(), RECORD, None, routed, set())) == "unrecorded_escalation"
    assert refusal(request(source="router"), RECORD, None, routed, set()) is None
    assert kinds(refusal(request(9), RECORD, queue(0), failed, set())) == "unknown_attempt"
    assert refusal(request(1, "specialist"), RECORD, queue(0), chain, set()) is None
    assert refusal(request(source="router"), RECORD, None, {}, {"router"}) is None
    assert kinds(refusal(request(), RECORD, None, {}, {"router"})) == "unrecorded_escalation"
    batch = {DecisionRef("P-2", "verifier", "verify"): {"passed": False},  # the batch's others
             DecisionRef("P-1", "verifier", "verify@1"): {"passed": False}, **passed}
    assert kinds(refusal(request(), RECORD, None, batch, set())) == "unrecorded_escalation"
    assert refusal(request(1), RECORD, queue(0), batch, set()) is None


async def test_a_redelivered_refusal_is_audited_and_counted_once() -> None:
    def counted() -> float:
        return REGISTRY.get_sample_value("pinworks_refusals_total", {
            "stage": "test-stage", "kind": provenance.UNKNOWN_TICKET}) or 0.0

    message = SimpleNamespace(subject="pinworks.work.drafted", headers={}, data=b"{}",
                              metadata=SimpleNamespace(sequence=SimpleNamespace(stream=41)))
    books, before = MemoryBooks(), counted()
    for _ in range(2):
        refusals = provenance.Refusals("test-stage")
        refusals.refuse("P-404", Delivery(cast(Any, message)),
                        provenance.Refusal(provenance.UNKNOWN_TICKET, "no ticket P-404"))
        async with books.transaction() as ledger:
            await ledger.record(refusals.audited())
    assert [row["event_key"] for row in books.store.rows("accountability")] == ["refused:41"]
    assert counted() - before == 1.0
