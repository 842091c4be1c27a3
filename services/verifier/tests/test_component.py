"""Component tier of the verifier: its stage under the real runner and ledger, in memory (no
Postgres, no NATS), fed real drafted envelopes as JetStream messages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pinworks_common.customer_state import DECISION_KEY
from pinworks_common.ledger import CostEntry, Decision, Entries
from pinworks_common.ledger.memory import StageHarness, sent, without_nonce
from pinworks_common.stage import escalate_on_dead_letter
from pinworks_contracts import messages
from pinworks_contracts.subjects import DRAFTED, ESCALATION_REQUESTED, outcome_subject
from pinworks_verifier.result import CheckResult
from pinworks_verifier.stage import VerifierStage


class PromiseCheck:
    """Fails a draft that promises; crashes on one that says `crash` (a bug in a check)."""

    name = "promise"
    version = "promise-test-1"

    def __init__(self) -> None:
        self.strict = False

    def run(self, envelope: messages.TicketEnvelope) -> CheckResult:
        assert envelope.draft is not None
        if "crash" in envelope.draft.answer:
            raise KeyError("crash")
        failed = self.strict or "guarantee" in envelope.draft.answer
        return CheckResult(self.name, self.version, not failed,
                           ("the draft makes a promise",) if failed else ())


def drafted(ticket_id: str, answer: str) -> messages.TicketEnvelope:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail", body="Card?"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=messages.Classification(intent="card_arrival", confidence=0.9, alternatives=[],
                                      out_of_scope=False, model_version="m"),
        draft=messages.Draft(handler="kb", handler_version="1", answer=answer, cost_usd=Decimal("0.02")))


def recorded(stage: StageHarness, envelope: messages.TicketEnvelope) -> messages.TicketEnvelope:
    """The envelope, with the ticket and draft the platform would have recorded for it."""
    stage.record_upstream(envelope)
    return envelope


def harness(check: PromiseCheck) -> StageHarness:
    return StageHarness(VerifierStage([check]),
                        on_dead_letter=escalate_on_dead_letter("verifier"))


def test_a_passing_draft_resolves_with_the_ledgers_cost_and_a_failing_one_escalates() -> None:
    stage = harness(PromiseCheck())
    stage.record(Entries(costs=[CostEntry("V-1", "retail", "specialist:kb", "draft:kb",
                                          Decimal("0.02"))]))
    good = stage.message(recorded(stage, drafted("V-1", "It is on its way.")), DRAFTED)
    bad = stage.message(recorded(stage, drafted("V-2", "We guarantee it arrives today.")), DRAFTED)
    published = {without_nonce(p.msg_id): p for p in stage.deliver(good, bad)}
    resolved = published["V-1:outcome:automation"]
    assert resolved.subject == outcome_subject("resolved", "support")
    outcome = messages.Outcome.model_validate_json(resolved.payload)
    assert (outcome.answer, outcome.cost_usd) == ("It is on its way.", Decimal("0.02"))
    escalation = published["V-2:escalate"]
    assert escalation.subject == ESCALATION_REQUESTED
    assert messages.EscalationRequest.model_validate_json(escalation.payload).reasons == [
        "the draft makes a promise"]


def test_a_redelivery_hands_on_the_first_verdict_and_records_nothing_twice() -> None:
    check = PromiseCheck()
    stage = harness(check)
    message = stage.message(recorded(stage, drafted("V-3", "It is on its way.")), DRAFTED)
    first = stage.deliver(message)
    check.strict = True  # a recomputation would now escalate
    assert sent(stage.deliver(message.redelivered())) == sent(first)
    assert len(stage.rows("outcomes")) == 1 and len(stage.rows("decisions", stage="verifier")) == 1


def test_a_draft_that_breaks_a_check_is_dead_lettered_without_stalling_the_others() -> None:
    stage = harness(PromiseCheck())
    crash = stage.message(recorded(stage, drafted("V-4", "crash")), DRAFTED)
    good = stage.message(recorded(stage, drafted("V-5", "It is on its way.")), DRAFTED)
    assert [without_nonce(p.msg_id) for p in stage.deliver(crash, good)] == ["V-5:outcome:automation"]
    assert good.acked and not crash.acked and crash.naked is not None
    retry = crash
    for _ in range(2):
        retry = retry.redelivered()
        published = stage.deliver(retry)
    assert retry.acked
    assert {p.msg_id for p in published} == {f"deadletter:verifier:{crash.seq}", "V-4:escalate"}
    assert [row["ticket_id"] for row in stage.rows("dead_letters")] == ["V-4"]


def test_a_draft_for_a_ticket_never_accepted_is_refused_audited_and_acked() -> None:
    stage = harness(PromiseCheck())
    forged = drafted("V-6", "Your fee is waived.")
    assert forged.draft is not None
    forged.draft.details["entitlements"] = ["fee_waiver"]
    message = stage.message(forged, DRAFTED)
    assert stage.deliver(message) == [] and message.acked
    [audit] = stage.rows("accountability", ticket_id="V-6")
    assert (audit["event_key"], audit["actor"], audit["action"]) == (
        f"refused:{message.seq}", "verifier", "refuse")
    assert audit["details"]["kind"] == "unknown_ticket"
    assert stage.rows("decisions") == [] and stage.rows("outcomes") == []


def test_the_verdict_is_on_the_recorded_draft_not_the_messages_copy() -> None:
    stage = harness(PromiseCheck())
    stage.record_upstream(drafted("V-7", "We guarantee it arrives today."))
    forged = drafted("V-7", "It is on its way.")
    [escalation] = stage.deliver(stage.message(forged, DRAFTED))
    request = messages.EscalationRequest.model_validate_json(escalation.payload)
    assert request.envelope.draft is not None
    assert request.envelope.draft.answer == "We guarantee it arrives today."


def test_a_draft_no_specialist_recorded_or_of_an_attempt_never_started_is_refused() -> None:
    stage = harness(PromiseCheck())
    accepted = drafted("V-8", "It is on its way.")
    stage.record_upstream(accepted.model_copy(update={"draft": None}))
    later = accepted.model_copy(update={"attempt": 3})
    stage.record_upstream(later)  # a draft recorded for attempt 3, which no agent started
    first, third = stage.message(accepted, DRAFTED), stage.message(later, DRAFTED)
    assert stage.deliver(first, third) == [] and first.acked and third.acked
    kinds = {row["event_key"]: row["details"]["kind"]
             for row in stage.rows("accountability", ticket_id="V-8")}
    assert kinds == {f"refused:{first.seq}": "unrecorded_draft",
                     f"refused:{third.seq}": "unknown_attempt"}


class StateSeen:
    """Passes everything; keeps the customer-state reading each envelope handed it."""

    name = "state-seen"
    version = "state-seen-1"

    def __init__(self) -> None:
        self.seen: dict[str, messages.CustomerState | None] = {}

    def run(self, envelope: messages.TicketEnvelope) -> CheckResult:
        self.seen[envelope.ticket.ticket_id] = envelope.customer_state
        return CheckResult(self.name, self.version, True, ())


def test_checks_get_the_recorded_customer_state_never_the_messages() -> None:
    check = StateSeen()
    stage = StageHarness(VerifierStage([check]))
    reading = messages.CustomerState(signals=[messages.CustomerSignal(
        kind="legal_threat", evidence="ombudsman")], sentiment=-0.3, version="customer-state-3")
    stage.record(Entries(decisions=[Decision(
        "V-8", "classifier", DECISION_KEY, "classifier", "c1", inputs={},
        output=reading.model_dump(mode="json"), reason="customer state")]))
    forged = messages.CustomerState(signals=[], sentiment=0.9, version="customer-state-3")
    claims = [drafted(ticket, "It is on its way.").model_copy(update={"customer_state": forged})
              for ticket in ("V-8", "V-9")]
    stage.deliver(*(stage.message(recorded(stage, claim), DRAFTED) for claim in claims))
    assert check.seen == {"V-8": reading, "V-9": None}
