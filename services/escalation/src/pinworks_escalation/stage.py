"""The escalation stage: store each escalated ticket with its full context in the human
queue and publish the `escalated` outcome."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import EscalationRequest, Outcome, utcnow
from pinworks_common.customer_state import CustomerStateReader, recorded_states
from pinworks_common.db.records import (
    costs_by_ticket,
    outcome_publication,
    record_accountability,
    record_decisions,
    record_outcomes,
)
from pinworks_common.db.tables import escalations
from pinworks_common.stage import Delivery, Publication, Work, decode_model, envelope_publication
from pinworks_common.subjects import (
    ASSIST_REQUESTED,
    WORK_STREAM,
    OutcomeStatus,
    Stage,
    attempt_key,
)
from pinworks_escalation.queue import OPEN, assess_priority, sla_for, tier_of

AUTOMATION = "automation"
VERSION = "escalation-3"


def reopening_insert() -> Any:
    """Queue a ticket once per automation attempt: a later attempt (the ticket was sent back
    to automation and escalated again) reopens the row, keeping the agents' corrections."""
    statement = insert(escalations)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["ticket_id"],
        set_={
            "status": excluded.status,
            "priority": excluded.priority,
            "source_stage": excluded.source_stage,
            "reasons": excluded.reasons,
            "context": escalations.c.context.op("||")(excluded.context),
            "tier": excluded.tier,
            "sla_due_at": excluded.sla_due_at,
            "attempt": excluded.attempt,
            "claimed_by": None,
            "lease_expires_at": None,
        },
        where=escalations.c.attempt < excluded.attempt,
    )


class EscalationStage:
    """Priority and SLA come from the customer-state reading the classifier stage recorded
    (read from the ticket's text only for a ticket that has none), never from the message."""

    stage = Stage.ESCALATION.value

    def __init__(self, reader: CustomerStateReader | None = None) -> None:
        self.reader = reader or CustomerStateReader()

    def decode(self, delivery: Delivery) -> EscalationRequest:
        request: EscalationRequest = decode_model(EscalationRequest, delivery)
        return request

    async def apply(
        self, conn: AsyncConnection, work: Sequence[Work[EscalationRequest]]
    ) -> list[Publication]:
        rows, decisions, accountability = [], [], []
        now = utcnow()
        states = await recorded_states(conn, (item.value.envelope.ticket.ticket_id
                                              for item in work))
        for item in work:
            request = item.value
            ticket = request.envelope.ticket
            state = states.get(ticket.ticket_id) or self.reader.read(ticket.subject, ticket.body)
            assessed = assess_priority(request.reasons, ticket.metadata, state)
            priority = assessed.score
            because = list(assessed.because)
            tier = tier_of(ticket.metadata)
            sla_due_at = now + sla_for(priority, tier)
            rows.append({
                "ticket_id": ticket.ticket_id,
                "business_unit": ticket.business_unit,
                "status": OPEN,
                "priority": priority,
                "source_stage": request.source_stage,
                "reasons": request.reasons,
                "context": {"envelope": request.envelope.model_dump(mode="json"),
                            "customer_state": state.model_dump(mode="json"),
                            "priority_because": because},
                "trace_id": request.envelope.trace_id,
                "tier": tier,
                "sla_due_at": sla_due_at,
                "attempt": request.envelope.attempt,
            })
            decisions.append({
                "ticket_id": ticket.ticket_id,
                "stage": self.stage,
                "decision_key": attempt_key("enqueue", request.envelope.attempt),
                "component": "escalation",
                "version": VERSION,
                "inputs": {"source_stage": request.source_stage,
                           "customer_state": state.model_dump(mode="json"),
                           "customer_state_recorded": ticket.ticket_id in states},
                "output": {"priority": priority, "priority_because": because,
                           "reasons": request.reasons, "tier": tier,
                           "sla_due_at": sla_due_at.isoformat()},
                "reason": f"queued for a person at priority {priority}"
                + (f" (ahead: {'; '.join(because)})" if because else "")
                + ": " + "; ".join(request.reasons),
                "cost_usd": Decimal(0),
                "latency_ms": None,
                "trace_id": item.trace_id,
            })
            accountability.append({
                "ticket_id": ticket.ticket_id,
                "event_key": attempt_key("escalation:enqueue", request.envelope.attempt),
                "actor_type": "component",
                "actor": "escalation",
                "action": "enqueue",
                "version": VERSION,
                "details": {"priority": priority, "sla_due_at": sla_due_at.isoformat()},
            })
        await conn.execute(reopening_insert(), rows)
        await record_decisions(conn, decisions)
        await record_accountability(conn, accountability)
        ids = [item.value.envelope.ticket.ticket_id for item in work]
        costs = await costs_by_ticket(conn, ids)
        candidates = []
        for item in work:
            envelope = item.value.envelope
            classification = envelope.classification
            candidates.append((attempt_key(AUTOMATION, envelope.attempt), Outcome(
                ticket_id=envelope.ticket.ticket_id,
                status=OutcomeStatus.ESCALATED,
                business_unit=envelope.ticket.business_unit,
                intent=classification.intent if classification else None,
                confidence=classification.confidence if classification else None,
                handler="human",
                reasons=item.value.reasons,
                cost_usd=costs.get(envelope.ticket.ticket_id, Decimal(0)),
                resolved_by=AUTOMATION,
                trace_id=envelope.trace_id,
                decided_at=utcnow(),
            ), item.trace_headers))
        stored = await record_outcomes(conn, [(key, outcome) for key, outcome, _ in candidates])
        publications = [
            outcome_publication(outcome, key, headers)
            for (key, _, headers), outcome in zip(candidates, stored, strict=True)
        ]
        publications += [assist_publication(item) for item in work]
        return publications


def assist_publication(item: Work[EscalationRequest]) -> Publication:
    """Ask the specialists for the agent's suggested reply (template, passages, drafts)."""
    request = item.value
    return envelope_publication(
        request.model_dump_json().encode(), subject=ASSIST_REQUESTED, stream=WORK_STREAM,
        ticket_id=request.envelope.ticket.ticket_id,
        step=attempt_key("assist", request.envelope.attempt), headers=item.trace_headers)
