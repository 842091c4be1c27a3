"""The router stage: apply the policy to each classified ticket and audit why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import EscalationRequest, RouteDecision, TicketEnvelope
from pinworks_common.db.records import record_accountability, record_decisions, stored_outputs
from pinworks_common.stage import (
    Delivery,
    Publication,
    Work,
    decode_model,
    envelope_publication,
    escalation_publication,
)
from pinworks_common.subjects import WORK_STREAM, Stage, attempt_key, routed_subject
from pinworks_router.domain import route
from pinworks_router.policy import Policy

HUMAN = "human"


class RouterStage:
    stage = Stage.ROUTER.value

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.classification is None:
            raise ValueError("classified ticket carries no classification")
        return envelope

    async def apply(
        self, conn: AsyncConnection, work: Sequence[Work[TicketEnvelope]]
    ) -> list[Publication]:
        decisions, accountability = [], []
        for item in work:
            envelope = item.value
            assert envelope.classification is not None
            started = time.perf_counter()
            evaluation = route(self.policy, envelope.ticket, envelope.classification)
            latency_ms = (time.perf_counter() - started) * 1000
            ticket_id = envelope.ticket.ticket_id
            decisions.append({
                "ticket_id": ticket_id,
                "stage": self.stage,
                "decision_key": attempt_key("route", envelope.attempt),
                "component": "router",
                "version": self.policy.version,
                "inputs": {
                    "intent": envelope.classification.intent,
                    "confidence": envelope.classification.confidence,
                    "out_of_scope": envelope.classification.out_of_scope,
                    "business_unit": envelope.ticket.business_unit,
                    "channel": envelope.ticket.channel,
                    "classifier_version": envelope.classification.model_version,
                },
                "output": {
                    **evaluation.decision.model_dump(mode="json"),
                    "passed_over": evaluation.passed_over,
                },
                "reason": f"rule {evaluation.decision.rule}: {evaluation.decision.reason}",
                "cost_usd": Decimal(0),
                "latency_ms": latency_ms,
                "trace_id": item.trace_id,
            })
            accountability.append({
                "ticket_id": ticket_id,
                "event_key": attempt_key("router:route", envelope.attempt),
                "actor_type": "component",
                "actor": "router",
                "action": f"route to {evaluation.decision.handler}",
                "version": self.policy.version,
                "details": {"rule": evaluation.decision.rule},
            })
        await record_decisions(conn, decisions)
        await record_accountability(conn, accountability)
        keys = {item.value.ticket.ticket_id: attempt_key("route", item.value.attempt)
                for item in work}
        stored = await stored_outputs(conn, self.stage, keys, keys)
        publications = []
        for item in work:
            envelope = item.value
            decision = RouteDecision.model_validate(stored[envelope.ticket.ticket_id])
            routed = envelope.model_copy(update={"route": decision})
            if decision.handler == HUMAN:
                request = EscalationRequest(
                    envelope=routed, source_stage=self.stage,
                    reasons=[f"routed to a person by rule {decision.rule}: {decision.reason}"],
                )
                publications.append(escalation_publication(request, item.trace_headers))
                continue
            publications.append(envelope_publication(
                routed.model_dump_json().encode(),
                subject=routed_subject(decision.handler),
                stream=WORK_STREAM,
                ticket_id=envelope.ticket.ticket_id,
                step=attempt_key("routed", envelope.attempt),
                headers=item.trace_headers,
            ))
        return publications
