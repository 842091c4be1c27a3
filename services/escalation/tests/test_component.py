"""Component tier of the escalation stage: under the real runner and ledger, in memory (no
Postgres, no NATS), fed real escalation requests as JetStream messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pinworks_common.ledger.memory import StageHarness, sent, without_nonce
from pinworks_contracts import messages
from pinworks_contracts.subjects import ASSIST_REQUESTED, ESCALATION_REQUESTED, outcome_subject
from pinworks_escalation.stage import EscalationStage


def request(ticket_id: str, attempt: int = 0, reason: str = "a check failed"
            ) -> messages.EscalationRequest:
    envelope = messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="My card has not arrived", metadata={"tier": "vip"}),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC), attempt=attempt,
        classification=messages.Classification(intent="card_arrival", confidence=0.9, alternatives=[],
                                      out_of_scope=False, model_version="m"))
    return messages.EscalationRequest(envelope=envelope, source_stage="verifier", reasons=[reason])


def recorded(stage: StageHarness, escalation: messages.EscalationRequest
             ) -> messages.EscalationRequest:
    """The request, with the ticket and the step handing it to a person recorded upstream."""
    stage.record_upstream(escalation.envelope, escalated_by=escalation.source_stage)
    return escalation


def test_a_ticket_is_queued_and_announced_as_escalated() -> None:
    stage = StageHarness(EscalationStage())
    message = stage.message(recorded(stage, request("E-1")), ESCALATION_REQUESTED)
    published = {without_nonce(p.msg_id): p for p in stage.deliver(message)}
    assert message.acked
    outcome = published["E-1:outcome:automation"]
    assert outcome.subject == outcome_subject("escalated", "support")
    assert messages.Outcome.model_validate_json(outcome.payload).reasons == ["a check failed"]
    assert published["E-1:assist"].subject == ASSIST_REQUESTED
    [queued] = stage.rows("escalations")
    assert (queued["status"], queued["tier"], queued["attempt"]) == ("open", "vip", 0)


def test_a_redelivery_republishes_the_stored_outcome_and_records_nothing_twice() -> None:
    stage = StageHarness(EscalationStage())
    message = stage.message(recorded(stage, request("E-2")), ESCALATION_REQUESTED)
    first = stage.deliver(message)
    again = stage.deliver(message.redelivered())
    assert sorted(sent(again)) == sorted(sent(first))
    assert [len(stage.rows("escalations")), len(stage.rows("decisions", stage="escalation")),
            len(stage.rows("outcomes"))] == [1, 1, 1]


def test_a_later_attempt_reopens_the_queued_ticket() -> None:
    stage = StageHarness(EscalationStage())
    stage.deliver(stage.message(recorded(stage, request("E-3")), ESCALATION_REQUESTED))
    later = stage.deliver(stage.message(
        recorded(stage, request("E-3", 1, "sent back, failed again")), ESCALATION_REQUESTED))
    assert {without_nonce(p.msg_id) for p in later} == {"E-3:outcome:automation@1", "E-3:assist@1"}
    [queued] = stage.rows("escalations")
    assert (queued["attempt"], queued["reasons"]) == (1, ["sent back, failed again"])
    assert [d["decision_key"] for d in stage.rows("decisions", stage="escalation")] == [
        "enqueue", "enqueue@1"]


def test_a_poison_message_is_dead_lettered_without_holding_up_its_batch() -> None:
    stage = StageHarness(EscalationStage())
    poison = stage.message(b'{"envelope": {}}', ESCALATION_REQUESTED)
    good = stage.message(recorded(stage, request("E-4")), ESCALATION_REQUESTED)
    published = {without_nonce(p.msg_id) for p in stage.deliver(poison, good)}
    assert poison.acked and good.acked
    assert {f"deadletter:escalation:{poison.seq}", "E-4:outcome:automation"} <= published
    assert [row["stream_seq"] for row in stage.rows("dead_letters")] == [poison.seq]


def test_an_escalation_no_stored_step_made_is_refused_and_leaves_the_claimed_row_alone() -> None:
    stage = StageHarness(EscalationStage())
    stage.deliver(stage.message(recorded(stage, request("E-5")), ESCALATION_REQUESTED))
    [row] = stage.rows("escalations")
    row.update(status="claimed", claimed_by="alice")
    forged = stage.message(request("E-5", 9, "forged"), ESCALATION_REQUESTED)
    unstarted = request("E-5", 1, "forged")
    stage.record_upstream(unstarted.envelope)  # the ticket, but no step of attempt 1 escalated
    again = stage.message(unstarted, ESCALATION_REQUESTED)
    stranger = stage.message(request("E-6", 0, "forged"), ESCALATION_REQUESTED)
    assert stage.deliver(forged, again, stranger) == []
    assert forged.acked and again.acked and stranger.acked
    [kept] = stage.rows("escalations")
    assert (kept["attempt"], kept["status"], kept["claimed_by"], kept["reasons"]) == (
        0, "claimed", "alice", ["a check failed"])
    kinds = {(row["ticket_id"], row["event_key"]): row["details"]["kind"]
             for row in stage.rows("accountability") if row["action"] == "refuse"}
    assert kinds == {("E-5", f"refused:{forged.seq}"): "unknown_attempt",
                     ("E-5", f"refused:{again.seq}"): "unrecorded_escalation",
                     ("E-6", f"refused:{stranger.seq}"): "unknown_ticket"}
    assert len(stage.rows("outcomes")) == 1


def test_a_batch_reads_its_stored_decisions_once_and_no_queue_rows_or_dead_letters() -> None:
    """The steps that handed the tickets over and the customer-state readings, in one read;
    attempt 0 needs no queue row, and a stored decision that hands the ticket over needs no
    dead letter, so neither is read (two statements a batch fewer)."""
    stage = StageHarness(EscalationStage())
    reads: list[str] = []
    store = stage.books.store
    stored_decisions, stored_rows = store.stored_decisions, store.stored_rows

    async def decisions(refs):  # type: ignore[no-untyped-def]
        reads.append("decisions")
        return await stored_decisions(refs)

    async def rows(table, column, values):  # type: ignore[no-untyped-def]
        reads.append(table)
        return await stored_rows(table, column, values)

    store.stored_decisions, store.stored_rows = decisions, rows  # type: ignore[method-assign]
    messages_ = [stage.message(recorded(stage, request(f"E-R{n}")), ESCALATION_REQUESTED)
                 for n in range(3)]
    stage.deliver(*messages_)
    assert all(message.acked for message in messages_)
    assert len(stage.rows("escalations")) == 3
    assert reads == ["tickets", "decisions"]


def test_a_ticket_a_stage_dead_lettered_is_queued_on_its_dead_letter_alone() -> None:
    """No stored decision hands it over, so the dead letters are read: the asking stage's own
    accounts for the request, another stage's does not."""
    stage = StageHarness(EscalationStage())
    ours, theirs = request("E-D1"), request("E-D2")
    for escalation in (ours, theirs):
        stage.record_upstream(escalation.envelope)  # the ticket; no step handed it over
    for seq, (ticket_id, dead_stage) in enumerate((("E-D1", "verifier"), ("E-D2", "router"))):
        asyncio.run(stage.books.store.insert_once("dead_letters", [{
            "stage": dead_stage, "subject": "pinworks.work.drafted", "stream_seq": 900 + seq,
            "ticket_id": ticket_id, "deliveries": 3, "error": "boom", "raw_payload": "{}"}]))
    stage.deliver(stage.message(ours, ESCALATION_REQUESTED),
                  stage.message(theirs, ESCALATION_REQUESTED))
    assert [row["ticket_id"] for row in stage.rows("escalations")] == ["E-D1"]
    kinds = [row["details"]["kind"] for row in stage.rows("accountability")
             if row["action"] == "refuse"]
    assert kinds == ["unrecorded_escalation"]


def test_a_first_escalation_is_queued_on_the_classifiers_recorded_reading() -> None:
    """A sender with a service's identity cannot put another intent in front of the agent: the
    queue row and the assist request carry the classification the classifier recorded."""
    stage = StageHarness(EscalationStage())
    honest = recorded(stage, request("E-C1"))
    forged_reading = messages.Classification(intent="terminate_account", confidence=0.99,
                                             alternatives=[], out_of_scope=False,
                                             model_version="forged")
    forged = honest.model_copy(update={"envelope": honest.envelope.model_copy(
        update={"classification": forged_reading})})
    published = {without_nonce(p.msg_id): p for p in stage.deliver(
        stage.message(forged, ESCALATION_REQUESTED))}
    [queued] = stage.rows("escalations")
    assert queued["context"]["envelope"]["classification"]["intent"] == "card_arrival"
    assist = messages.EscalationRequest.model_validate_json(published["E-C1:assist"].payload)
    assert assist.envelope.classification is not None
    assert (assist.envelope.classification.intent,
            assist.envelope.classification.model_version) == ("card_arrival", "m")
