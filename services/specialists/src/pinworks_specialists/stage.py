"""The specialist stage: one durable consumer per handler; drafts go to the verifier."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pinworks_common.contracts import Draft, EscalationRequest, TicketEnvelope
from pinworks_common.db.records import (
    record_accountability,
    record_costs,
    record_decisions,
    stored_outputs,
)
from pinworks_common.stage import (
    Delivery,
    Publication,
    Work,
    decode_model,
    envelope_publication,
    escalation_publication,
)
from pinworks_common.subjects import DRAFTED, WORK_STREAM, Stage
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_specialists.handlers import Handler


class SpecialistStage:
    stage = Stage.SPECIALIST.value

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.decision_key = f"draft:{handler.name}"

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.classification is None or envelope.route is None:
            raise ValueError("routed ticket carries no classification or route")
        return envelope

    async def apply(
        self, conn: AsyncConnection, work: Sequence[Work[TicketEnvelope]]
    ) -> list[Publication]:
        decisions: list[dict[str, Any]] = []
        costs: list[dict[str, Any]] = []
        accountability: list[dict[str, Any]] = []
        for item in work:
            envelope = item.value
            ticket = envelope.ticket
            started = time.perf_counter()
            result = self.handler.handle(envelope)
            latency_ms = (time.perf_counter() - started) * 1000
            cost = result.cost_usd if isinstance(result, Draft) else Decimal(0)
            output = (
                {"draft": result.model_dump(mode="json")}
                if isinstance(result, Draft)
                else {"declined": result.reason}
            )
            decisions.append({
                "ticket_id": ticket.ticket_id,
                "stage": self.stage,
                "decision_key": self.decision_key,
                "component": f"specialist:{self.handler.name}",
                "version": self.handler.version,
                "inputs": {"intent": envelope.classification.intent if envelope.classification
                           else None, "route_rule": envelope.route.rule if envelope.route
                           else None},
                "output": output,
                "reason": "drafted an answer" if isinstance(result, Draft) else result.reason,
                "cost_usd": cost,
                "latency_ms": latency_ms,
                "trace_id": item.trace_id,
            })
            if cost:
                costs.append({
                    "ticket_id": ticket.ticket_id,
                    "business_unit": ticket.business_unit,
                    "component": f"specialist:{self.handler.name}",
                    "entry_key": self.decision_key,
                    "amount_usd": cost,
                })
            accountability.append({
                "ticket_id": ticket.ticket_id,
                "event_key": f"specialist:{self.handler.name}",
                "actor_type": "component",
                "actor": f"specialist:{self.handler.name}",
                "action": "draft" if isinstance(result, Draft) else "decline",
                "version": self.handler.version,
                "details": {},
            })
        await record_decisions(conn, decisions)
        await record_costs(conn, costs)
        await record_accountability(conn, accountability)
        stored = await stored_outputs(
            conn, self.stage, self.decision_key, [item.value.ticket.ticket_id for item in work]
        )
        publications = []
        for item in work:
            envelope = item.value
            output = stored[envelope.ticket.ticket_id]
            if "draft" in output:
                drafted = envelope.model_copy(update={"draft": Draft.model_validate(output["draft"])})
                publications.append(envelope_publication(
                    drafted.model_dump_json().encode(), subject=DRAFTED, stream=WORK_STREAM,
                    ticket_id=envelope.ticket.ticket_id, step="drafted",
                    headers=item.trace_headers,
                ))
                continue
            request = EscalationRequest(
                envelope=envelope, source_stage=self.stage,
                reasons=[f"{self.handler.name} declined: {output['declined']}"],
            )
            publications.append(escalation_publication(request, item.trace_headers))
        return publications
