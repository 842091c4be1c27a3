"""Forgeries by a holder of a service's bus identity: internal messages the platform's records
do not account for are refused (audited, acked), never answered or queued."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from pinworks_contracts.subjects import (
    ASSIST_REQUESTED,
    DRAFTED,
    ESCALATION_REQUESTED,
    OUTCOMES_STREAM,
    WORK_STREAM,
    OutcomeStatus,
    outcome_subject,
)
from pinworks_escalation.queue import claim

from .conftest import PlatformClient, escalate, fresh_unit

pytestmark = pytest.mark.e2e

FEE_WAIVER = ("Good news: we have waived the late payment fee in full and refunded it to "
              "your account today.")


def forged_envelope(ticket_id: str, unit: str, body: str, attempt: int = 0) -> dict[str, Any]:
    return {
        "ticket": {"ticket_id": ticket_id, "business_unit": unit, "body": body},
        "trace_id": uuid.uuid4().hex, "received_at": datetime.now(UTC).isoformat(),
        "attempt": attempt,
        "classification": {"intent": "card_payment_fee_charged", "confidence": 0.99,
                           "alternatives": [], "out_of_scope": False, "model_version": "forged"},
    }


def forged_draft(ticket_id: str, unit: str) -> dict[str, Any]:
    envelope = forged_envelope(ticket_id, unit, "Please waive my late payment fee.")
    envelope["draft"] = {
        "handler": "kb", "handler_version": "forged", "answer": FEE_WAIVER, "cost_usd": "0",
        "citations": ["forged-1"],
        "details": {"entitlements": ["fee_waiver", "refund"],
                    "passages": [{"passage_id": "forged-1", "text": FEE_WAIVER}]},
    }
    return envelope


async def publish(client: PlatformClient, subject: str, message: dict[str, Any],
                  msg_id: str) -> int:
    ack = await client.js.publish(subject, json.dumps(message).encode(), stream=WORK_STREAM,
                                  headers={"Nats-Msg-Id": msg_id})
    return int(ack.seq)


async def refusal(client: PlatformClient, ticket_id: str, seq: int) -> Any:
    [row] = await client.wait_rows(
        "SELECT actor, action, details FROM accountability WHERE ticket_id = :t "
        "AND event_key = :k", t=ticket_id, k=f"refused:{seq}")
    return row


async def test_a_forged_draft_is_refused_for_an_unknown_ticket_and_for_a_real_one(
    client: PlatformClient,
) -> None:
    rid, unit = fresh_unit("forged")
    stranger = f"{rid}-never-submitted"
    seq = await publish(client, DRAFTED, forged_draft(stranger, unit), f"forged-{rid}-1")
    row = await refusal(client, stranger, seq)
    assert (row.actor, row.action, row.details["kind"]) == ("verifier", "refuse", "unknown_ticket")

    real = f"{rid}-real"
    await escalate(client, [real], unit)  # out of scope: no specialist ever drafted for it
    seq = await publish(client, DRAFTED, forged_draft(real, unit), f"forged-{rid}-2")
    row = await refusal(client, real, seq)
    assert row.details["kind"] == "unrecorded_draft"

    # the refusal and any outcome commit together: neither ticket has a resolved outcome
    resolved = await client.fetch(
        "SELECT ticket_id FROM outcomes WHERE ticket_id IN (:a, :b) AND status = 'resolved'",
        a=stranger, b=real)
    assert resolved == []
    assert await client.fetch("SELECT 1 FROM decisions WHERE ticket_id = :t", t=stranger) == []
    assert [o["status"] for o in client.outcomes.by_ticket[real]] == ["escalated"]


async def test_a_forged_escalation_keeps_the_queue_row_and_the_agents_claim(
    client: PlatformClient,
) -> None:
    rid, unit = fresh_unit("forged")
    ticket_id = f"{rid}-claimed"
    await escalate(client, [ticket_id], unit)
    async with client.engine.begin() as conn:
        item = await claim(conn, "ana", business_units=[unit])
    assert item is not None and item.ticket_id == ticket_id
    [before] = await client.fetch("SELECT * FROM escalations WHERE ticket_id = :t", t=ticket_id)

    forged = {"envelope": forged_envelope(ticket_id, unit, "Send GBP 5,000 to account 1234.",
                                          attempt=9),
              "source_stage": "verifier", "reasons": ["forged: pay out at once"]}
    seq = await publish(client, ESCALATION_REQUESTED, forged, f"forged-{rid}-esc9")
    forged["envelope"]["attempt"] = 0
    again = await publish(client, ESCALATION_REQUESTED, forged, f"forged-{rid}-esc0")
    assert (await refusal(client, ticket_id, seq)).details["kind"] == "unknown_attempt"
    assert (await refusal(client, ticket_id, again)).details["kind"] == "unrecorded_escalation"

    [after] = await client.fetch("SELECT * FROM escalations WHERE ticket_id = :t", t=ticket_id)
    kept = ("status", "claimed_by", "lease_expires_at", "reasons", "attempt", "context")
    assert {k: after._mapping[k] for k in kept} == {k: before._mapping[k] for k in kept}
    assert after.claimed_by == "ana"
    outcomes = await client.fetch("SELECT outcome_key FROM outcomes WHERE ticket_id = :t",
                                  t=ticket_id)
    assert [row.outcome_key for row in outcomes] == ["automation"]


async def test_a_forged_assist_request_is_refused_and_the_agents_material_is_the_queued_tickets(
    client: PlatformClient,
) -> None:
    """The specialists build an agent's suggested reply from the queue row, never from the
    request: one for an attempt the queue does not hold, or for a ticket never queued, is
    refused; the queued ticket's material is built on its recorded classification."""
    rid, unit = fresh_unit("forged")
    ticket_id, stranger = f"{rid}-queued", f"{rid}-never-queued"
    await escalate(client, [ticket_id], unit)
    [assist] = await client.wait_rows(
        "SELECT inputs FROM decisions WHERE ticket_id = :t AND stage = 'specialist' "
        "AND decision_key = 'assist'", t=ticket_id)
    [queued] = await client.fetch("SELECT context FROM escalations WHERE ticket_id = :t",
                                  t=ticket_id)
    recorded_intent = queued.context["envelope"]["classification"]["intent"]
    assert assist.inputs["intent"] == recorded_intent != "card_payment_fee_charged"

    def forged(for_ticket: str, attempt: int) -> dict[str, Any]:
        return {"envelope": forged_envelope(for_ticket, unit, "Please waive my fee.", attempt),
                "source_stage": "escalation", "reasons": ["forged"]}

    later = await publish(client, ASSIST_REQUESTED, forged(ticket_id, 1), f"forged-{rid}-a1")
    never = await publish(client, ASSIST_REQUESTED, forged(stranger, 0), f"forged-{rid}-a0")
    for refused_ticket, seq, held in ((ticket_id, later, "the queue holds attempt 0"),
                                      (stranger, never, "no queue row")):
        row = await refusal(client, refused_ticket, seq)
        assert (row.actor, row.details["kind"]) == ("specialist", "unrecorded_escalation")
        assert held in row.details["reason"]
    decisions = await client.fetch(
        "SELECT decision_key FROM decisions WHERE ticket_id IN (:t, :s) AND stage = 'specialist'",
        t=ticket_id, s=stranger)
    assert [row.decision_key for row in decisions] == ["assist"]


async def test_an_outcome_pre_published_under_the_old_predictable_id_does_not_stop_the_real_one(
    client: PlatformClient,
) -> None:
    """A holder of an identity that may publish outcomes pre-publishes a forged one under the id
    an outcome used to have (`<ticket>:outcome:automation`): the genuine outcome still arrives,
    under an id carrying its row's random nonce."""
    rid, unit = fresh_unit("preempt")
    ticket_id = f"{rid}-preempted"
    forged = {"ticket_id": ticket_id, "status": "resolved", "business_unit": unit,
              "answer": "GBP 5,000 refund approved", "cost_usd": "0", "resolved_by": "automation",
              "reasons": ["forged"], "decided_at": datetime.now(UTC).isoformat()}
    ack = await client.js.publish(outcome_subject(OutcomeStatus.RESOLVED, "support"),
                                  json.dumps(forged).encode(), stream=OUTCOMES_STREAM,
                                  headers={"Nats-Msg-Id": f"{ticket_id}:outcome:automation"})
    assert not ack.duplicate
    await escalate(client, [ticket_id], unit)
    seen = (await client.outcomes.wait_for([ticket_id], count=2))[ticket_id]
    genuine = [outcome for outcome in seen if outcome["reasons"] != ["forged"]]
    assert [outcome["status"] for outcome in genuine] == ["escalated"]
    [stored] = await client.fetch("SELECT payload FROM outcomes WHERE ticket_id = :t", t=ticket_id)
    assert stored.payload["reasons"] == genuine[0]["reasons"]
