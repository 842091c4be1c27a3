"""Component tier of the classifier: its stage under the real runner and ledger, in memory (no
Postgres, no NATS), fed real submission bytes as JetStream messages."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

from pinworks_classifier.stage import ClassifierStage
from pinworks_common.ledger.memory import StageHarness, sent, without_nonce
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import RESERVED_SEPARATOR, Outcome, TicketEnvelope
from pinworks_contracts.subjects import CLASSIFIED, outcome_subject, submission_subject


class StubModel:
    version = "stub-1"

    def predict(self, texts: list[str]) -> list[SimpleNamespace]:
        return [SimpleNamespace(intent="card_arrival", confidence=0.91, out_of_scope=False,
                                alternatives=[SimpleNamespace(intent="card_arrival", score=0.91)],
                                second_stage=False, cost_ms=1.5) for _ in texts]


SUBMITTED = submission_subject(DEFAULT_PLATFORM)
PARTNER_UNITS = {DEFAULT_PLATFORM: ["*"], "partner": ["partner-*", "shared"]}


def harness() -> StageHarness:
    return StageHarness(ClassifierStage(StubModel(), Decimal("0.0001"),
                                        platform_units=PARTNER_UNITS))


def submission(ticket_id: str, body: str = "My card has not arrived yet",
               unit: str = "retail") -> bytes:
    return json.dumps({"ticket_id": ticket_id, "business_unit": unit, "body": body}).encode()


def test_an_accepted_ticket_is_classified_and_handed_to_the_router() -> None:
    stage = harness()
    message = stage.message(submission("T-1"), SUBMITTED)
    [published] = stage.deliver(message)
    assert message.acked
    assert (published.subject, published.msg_id) == (CLASSIFIED, "T-1:classified")
    envelope = TicketEnvelope.model_validate_json(published.payload)
    assert envelope.classification is not None
    assert envelope.classification.intent == "card_arrival"
    assert envelope.customer_state is not None
    assert [d["decision_key"] for d in stage.rows("decisions", ticket_id="T-1")] == [
        "classify", "customer_state"]
    assert [c["amount_usd"] for c in stage.rows("cost_ledger")] == [Decimal("0.000100")]


def test_a_redelivery_republishes_the_stored_result_and_records_nothing_twice() -> None:
    stage = harness()
    message = stage.message(submission("T-2"), SUBMITTED)
    first = stage.deliver(message)
    rows = {table: len(stage.rows(table)) for table in ("decisions", "cost_ledger", "tickets")}
    again = message.redelivered()
    assert sent(stage.deliver(again)) == sent(first), "same stored envelope, same Nats-Msg-Id"
    assert again.acked
    assert {table: len(stage.rows(table)) for table in rows} == rows


def test_a_second_submission_of_an_id_is_recorded_as_a_duplicate_only() -> None:
    stage = harness()
    stage.deliver(stage.message(submission("T-3"), SUBMITTED))
    second = stage.message(submission("T-3", body="Where is my card?"), SUBMITTED)
    assert stage.deliver(second) == []
    assert second.acked
    assert [d["decision_key"] for d in stage.rows("decisions", ticket_id="T-3")] == [
        "classify", "customer_state", f"duplicate:{second.seq}"]
    assert len(stage.rows("cost_ledger")) == 1


def test_a_malformed_submission_is_rejected_without_holding_up_its_batch() -> None:
    stage = harness()
    bad = stage.message(json.dumps({"ticket_id": "T-bad", "business_unit": "retail"}).encode(),
                        SUBMITTED)
    garbage = stage.message(b"\xff not json", SUBMITTED)
    good = stage.message(submission("T-4"), SUBMITTED)
    published = stage.deliver(bad, garbage, good)
    assert bad.acked and garbage.acked and good.acked
    by_subject = {p.subject: p for p in published}
    assert by_subject[CLASSIFIED].msg_id == "T-4:classified"
    rejected = by_subject[outcome_subject("rejected", DEFAULT_PLATFORM)]
    assert without_nonce(rejected.msg_id) == f"T-bad:outcome:rejected:{bad.seq}"
    assert Outcome.model_validate_json(rejected.payload).reasons
    assert len(stage.rows("rejected_payloads")) == 2
    assert sent(stage.deliver(bad.redelivered())) == sent([rejected])
    assert len(stage.rows("outcomes")) == 1


def test_a_platform_submitting_for_a_unit_it_is_not_bound_to_gets_a_rejected_outcome() -> None:
    stage = harness()
    partner = submission_subject("partner")
    foreign = stage.message(submission("P-1", unit="retail"), partner)
    own = stage.message(submission("P-2", unit="partner-cards"), partner)
    shared = stage.message(submission("P-3", unit="shared"), partner)
    published = {without_nonce(p.msg_id): p for p in stage.deliver(foreign, own, shared)}
    assert foreign.acked and own.acked and shared.acked
    outcome = Outcome.model_validate_json(
        published[f"partner~P-1:outcome:rejected:{foreign.seq}"].payload)
    assert outcome.status == "rejected" and outcome.business_unit == "retail"
    assert (outcome.ticket_id, outcome.pinworks_ticket_id) == ("P-1", "partner~P-1")
    assert outcome.reasons == [
        "business_unit: support platform 'partner' may not submit for business unit 'retail'"]
    assert {"partner~P-2:classified", "partner~P-3:classified"} <= published.keys()
    for table in ("tickets", "decisions", "cost_ledger", "accountability"):
        assert stage.rows(table, ticket_id="partner~P-1") == [], table
    [kept] = stage.rows("rejected_payloads")
    assert kept["reasons"] == outcome.reasons and kept["ticket_id"] == "partner~P-1"


def test_a_platform_bound_to_no_unit_has_every_submission_rejected() -> None:
    stage = harness()
    message = stage.message(submission("U-1"), submission_subject("unknown"))
    [published] = stage.deliver(message)
    assert Outcome.model_validate_json(published.payload).reasons == [
        "business_unit: support platform 'unknown' is bound to no business unit"]
    assert stage.rows("tickets") == []


def test_two_platforms_submitting_the_same_id_get_two_independent_tickets() -> None:
    stage = harness()
    ours = stage.message(submission("X-1"), SUBMITTED)
    theirs = stage.message(submission("X-1", body="Refund me", unit="partner-x"),
                           submission_subject("partner"))
    published = {p.msg_id: p for p in stage.deliver(ours, theirs)}
    assert ours.acked and theirs.acked
    assert published.keys() == {"X-1:classified", "partner~X-1:classified"}
    handed = TicketEnvelope.model_validate_json(published["partner~X-1:classified"].payload)
    assert (handed.ticket.ticket_id, handed.platform, handed.ticket.body) == (
        "partner~X-1", "partner", "Refund me")
    [own] = stage.rows("tickets", ticket_id="X-1")
    [other] = stage.rows("tickets", ticket_id="partner~X-1")
    assert (own["platform"], own["body"]) == (DEFAULT_PLATFORM, "My card has not arrived yet")
    assert (other["platform"], other["body"]) == ("partner", "Refund me")
    for ticket_id in ("X-1", "partner~X-1"):
        assert [d["decision_key"] for d in stage.rows("decisions", ticket_id=ticket_id)] == [
            "classify", "customer_state"], ticket_id
    assert len(stage.rows("cost_ledger")) == 2
    assert stage.rows("rejected_payloads") == []
    again = stage.deliver(stage.message(submission("X-1", body="Refund me", unit="partner-x"),
                                        submission_subject("partner")))
    assert again == [], "the partner's resubmission is its own ticket's duplicate"
    assert [d["decision_key"].split(":")[0] for d in
            stage.rows("decisions", ticket_id="partner~X-1")][-1] == "duplicate"
    assert len(stage.rows("decisions", ticket_id="X-1")) == 2


def test_a_submitted_id_naming_another_platforms_namespace_is_refused() -> None:
    stage = harness()
    stage.deliver(stage.message(submission("Y-1", unit="partner-y"),
                                submission_subject("partner")))
    [before] = stage.rows("tickets", ticket_id="partner~Y-1")
    forged = stage.message(submission("partner~Y-1", body="Refund me"), SUBMITTED)
    assert stage.deliver(forged) == [], "an id it cannot read gets no outcome"
    assert forged.acked
    [kept] = stage.rows("rejected_payloads")
    assert (kept["ticket_id"], kept["stream_seq"]) == (None, forged.seq)
    assert kept["reasons"] == [RESERVED_SEPARATOR]
    assert stage.rows("tickets", ticket_id="partner~Y-1") == [before]
    assert len(stage.rows("decisions", ticket_id="partner~Y-1")) == 2
    assert stage.rows("outcomes") == []