"""The verifier stage: a draft that passes every check becomes the `resolved` outcome;
one that fails any check is escalated with every failing reason."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import EscalationRequest, Outcome, TicketEnvelope, utcnow
from pinworks_common.db.records import (
    costs_by_ticket,
    outcome_publication,
    record_accountability,
    record_decisions,
    record_outcomes,
    stored_outputs,
)
from pinworks_common.stage import (
    Delivery,
    Publication,
    Work,
    decode_model,
    escalation_publication,
)
from pinworks_common.subjects import OutcomeStatus, Stage, attempt_key
from pinworks_verifier.checks import Check, failing_reasons, verify
from pinworks_verifier.metrics import observe_verdicts

AUTOMATION = "automation"


class VerifierStage:
    stage = Stage.VERIFIER.value

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)
        self.version = "+".join(check.version for check in self.checks)

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.draft is None or envelope.classification is None:
            raise ValueError("drafted ticket carries no draft or classification")
        return envelope

    async def apply(
        self, conn: AsyncConnection, work: Sequence[Work[TicketEnvelope]]
    ) -> list[Publication]:
        decisions, accountability = [], []
        for item in work:
            envelope = item.value
            started = time.perf_counter()
            results = verify(self.checks, envelope)
            latency_ms = (time.perf_counter() - started) * 1000
            reasons = failing_reasons(results)
            decisions.append({
                "ticket_id": envelope.ticket.ticket_id,
                "stage": self.stage,
                "decision_key": attempt_key("verify", envelope.attempt),
                "component": "verifier",
                "version": self.version,
                "inputs": {"handler": envelope.draft.handler if envelope.draft else None,
                           "answer_chars": len(envelope.draft.answer) if envelope.draft else 0},
                "output": {
                    "passed": not reasons,
                    "reasons": reasons,
                    "checks": [
                        {"check": r.check, "version": r.version, "passed": r.passed,
                         "reasons": list(r.reasons), "details": r.details}
                        for r in results
                    ],
                },
                "reason": "every check passed" if not reasons else "; ".join(reasons),
                "cost_usd": Decimal(0),
                "latency_ms": latency_ms,
                "trace_id": item.trace_id,
            })
            accountability.append({
                "ticket_id": envelope.ticket.ticket_id,
                "event_key": attempt_key("verifier:verify", envelope.attempt),
                "actor_type": "component",
                "actor": "verifier",
                "action": "approve" if not reasons else "escalate",
                "version": self.version,
                "details": {"reasons": reasons},
            })
        observe_verdicts(await record_decisions(conn, decisions))
        await record_accountability(conn, accountability)
        ids = [item.value.ticket.ticket_id for item in work]
        keys = {item.value.ticket.ticket_id: attempt_key("verify", item.value.attempt)
                for item in work}
        stored = await stored_outputs(conn, self.stage, keys, ids)
        costs = await costs_by_ticket(conn, ids)
        candidates, escalations = [], []
        for item in work:
            envelope = item.value
            output = stored[envelope.ticket.ticket_id]
            if not output["passed"]:
                request = EscalationRequest(envelope=envelope, source_stage=self.stage,
                                            reasons=output["reasons"])
                escalations.append(escalation_publication(request, item.trace_headers))
                continue
            assert envelope.classification is not None and envelope.draft is not None
            candidates.append((attempt_key(AUTOMATION, envelope.attempt), Outcome(
                ticket_id=envelope.ticket.ticket_id,
                status=OutcomeStatus.RESOLVED,
                business_unit=envelope.ticket.business_unit,
                intent=envelope.classification.intent,
                confidence=envelope.classification.confidence,
                handler=envelope.draft.handler,
                answer=envelope.draft.answer,
                cost_usd=costs.get(envelope.ticket.ticket_id, Decimal(0)),
                resolved_by=AUTOMATION,
                trace_id=envelope.trace_id,
                decided_at=utcnow(),
            ), item.trace_headers))
        outcomes = await record_outcomes(conn, [(key, outcome) for key, outcome, _ in candidates])
        return escalations + [
            outcome_publication(outcome, key, headers)
            for (key, _, headers), outcome in zip(candidates, outcomes, strict=True)
        ]
