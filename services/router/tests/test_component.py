"""Component tier of the router: its stage under the real runner and ledger, in memory (no
Postgres, no NATS), fed real classified envelopes as JetStream messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pinworks_common.ledger.memory import StageHarness, sent
from pinworks_common.stage import escalate_on_dead_letter
from pinworks_contracts import messages
from pinworks_contracts.subjects import CLASSIFIED, ESCALATION_REQUESTED, routed_subject
from pinworks_router.policy import load_policy
from pinworks_router.stage import RouterStage


def harness() -> StageHarness:
    return StageHarness(RouterStage(load_policy()),
                        on_dead_letter=escalate_on_dead_letter("router"))


def classified(ticket_id: str, intent: str = "card_arrival", attempt: int = 0) -> messages.TicketEnvelope:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My card has not arrived yet"),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC), attempt=attempt,
        classification=messages.Classification(intent=intent, confidence=0.995, out_of_scope=False,
                                      model_version="m",
                                      alternatives=[messages.IntentScore(intent=intent, score=0.95)]))


def test_a_confident_ticket_goes_to_its_handler_and_a_security_one_to_a_person() -> None:
    stage = harness()
    card = stage.message(classified("R-1"), CLASSIFIED)
    fraud = stage.message(classified("R-2", "compromised_card"), CLASSIFIED)
    published = {p.msg_id: p for p in stage.deliver(card, fraud)}
    assert card.acked and fraud.acked
    routed = messages.TicketEnvelope.model_validate_json(published["R-1:routed"].payload)
    assert routed.route is not None and routed.route.handler == "template"
    assert published["R-1:routed"].subject == routed_subject("template")
    escalated = published["R-2:escalate"]
    assert escalated.subject == ESCALATION_REQUESTED
    assert "security" in messages.EscalationRequest.model_validate_json(escalated.payload).reasons[0]
    assert {(d["ticket_id"], d["decision_key"]) for d in stage.rows("decisions")} == {
        ("R-1", "route"), ("R-2", "route")}


def test_a_redelivery_republishes_the_stored_route_and_records_nothing_twice() -> None:
    stage = harness()
    message = stage.message(classified("R-3"), CLASSIFIED)
    first = stage.deliver(message)
    copy = stage.message(classified("R-3"), CLASSIFIED)
    assert sent(stage.deliver(message.redelivered(), copy)) == sent(first) * 2
    assert len(stage.rows("decisions")) == 1
    assert len(stage.rows("accountability")) == 1


def test_a_ticket_sent_back_by_an_agent_is_routed_afresh() -> None:
    stage = harness()
    stage.deliver(stage.message(classified("R-4"), CLASSIFIED))
    [again] = stage.deliver(stage.message(classified("R-4", attempt=1), CLASSIFIED))
    assert again.msg_id == "R-4:routed@1"
    assert [d["decision_key"] for d in stage.rows("decisions")] == ["route", "route@1"]


def test_a_poison_message_is_dead_lettered_without_holding_up_its_batch() -> None:
    stage = harness()
    garbage = stage.message(b'{"ticket": ', CLASSIFIED)
    unclassified = stage.message(
        classified("R-5").model_copy(update={"classification": None}), CLASSIFIED)
    good = stage.message(classified("R-6"), CLASSIFIED)
    published = {p.msg_id: p for p in stage.deliver(garbage, unclassified, good)}
    assert garbage.acked and unclassified.acked and good.acked
    assert "R-6:routed" in published
    assert f"deadletter:router:{garbage.seq}" in published
    assert f"deadletter:router:{unclassified.seq}" in published
    assert "R-5:escalate" in published, "a ticket the router gave up on still reaches a person"
    assert len(stage.rows("dead_letters")) == 2


def test_the_stored_decision_names_the_gates_passed_over_in_runs() -> None:
    stage = harness()
    stage.deliver(stage.message(classified("R-6"), CLASSIFIED))
    [row] = stage.rows("decisions", ticket_id="R-6", stage="router")
    runs = [entry for entry in row["output"]["passed_over"] if "through" in entry]
    assert runs and all(entry["rules"] >= 2 for entry in runs)
    assert sum(entry.get("rules", 1) for entry in row["output"]["passed_over"]) == [
        rule.name for rule in load_policy().rules].index(row["output"]["rule"])


def test_the_rule_s_reason_is_stored_once_and_handed_on() -> None:
    stage = harness()
    [published] = stage.deliver(stage.message(classified("R-7", "compromised_card"), CLASSIFIED))
    [row] = stage.rows("decisions", ticket_id="R-7", stage="router")
    rule = next(rule for rule in load_policy().rules if rule.name == row["output"]["rule"])
    assert rule.reason and row["output"]["reason"] == rule.reason
    assert row["reason"] == f"rule {rule.name} -> human"
    assert json.dumps(row, default=str).count(rule.reason) == 1
    request = messages.EscalationRequest.model_validate_json(published.payload)
    assert request.envelope.route is not None and request.envelope.route.reason == rule.reason
    assert request.reasons[0] == f"routed to a person by rule {rule.name}: {rule.reason}"
