"""The verifier stage: a draft that passes every check becomes the `resolved` outcome;
one that fails any check is escalated with every failing reason."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from pinworks_common import provenance
from pinworks_common.customer_state import recorded_states, state_ref
from pinworks_common.ledger import Ledger, keys, records
from pinworks_common.stage import Delivery, Work, decode_model
from pinworks_contracts.messages import EscalationRequest, TicketEnvelope
from pinworks_contracts.subjects import OutcomeStatus, Stage
from pinworks_verifier.checks import Check, failing_reasons, verify
from pinworks_verifier.metrics import observe_verdicts


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

    def ref(self, envelope: TicketEnvelope) -> records.DecisionRef:
        return records.DecisionRef(envelope.ticket.ticket_id, self.stage, keys.verify(envelope.attempt))

    async def apply(self, ledger: Ledger, work: Sequence[Work[TicketEnvelope]]) -> records.Entries:
        """Check every draft the records account for, on the recorded ticket, classification
        and draft (see `provenance`); refuse the others. What follows (the outcome or an
        escalation) is built from the stored verdict, so a redelivery hands on the first
        verdict, not a recomputed one."""
        recorded, entries = await self._recorded(ledger, work)
        costs = await ledger.costs(item.value.ticket.ticket_id for item in recorded)
        entries.observers.append(_observe)
        for item in recorded:
            entries.extend(self._verdict(item))
            entries.handoffs.append(records.HandOff(self.ref(item.value),
                                            partial(_hand_off, self.stage, item, costs)))
        return entries

    async def _recorded(self, ledger: Ledger, work: Sequence[Work[TicketEnvelope]]
                        ) -> tuple[list[Work[TicketEnvelope]], records.Entries]:
        """The work as recorded (the message's claims replaced by the stored rows, the
        customer-state reading by the classifier stage's), and the audit of the messages the
        records do not account for."""
        ids = {item.value.ticket.ticket_id for item in work}
        tickets = await provenance.recorded_tickets(ledger, ids)
        queue = await provenance.recorded_queue(
            ledger, {item.value.ticket.ticket_id for item in work if item.value.attempt})
        refs = {id(item): provenance.draft_ref(
            item.value.ticket.ticket_id, item.value.draft.handler if item.value.draft else "?",
            item.value.attempt) for item in work}
        # the readings too, in the same query: `recorded_states` finds them read
        drafts = await ledger.decided([*refs.values(), *map(state_ref, ids)])
        states = await recorded_states(ledger, ids)
        recorded, refusals = [], provenance.Refusals(self.stage)
        for item in work:
            envelope, ticket_id = item.value, item.value.ticket.ticket_id
            ticket, held = tickets.get(ticket_id), queue.get(ticket_id)
            stored = drafts.get(refs[id(item)])
            refusal = provenance.draft_refusal(envelope, ticket, held, stored)
            if refusal is None:
                assert ticket is not None and stored is not None
                recorded.append(Work(item.delivery, provenance.recorded_envelope(
                    envelope, ticket, held, stored, states.get(ticket_id)), item.span))
                continue
            refusals.refuse(ticket_id, item.delivery, refusal)
        return recorded, refusals.audited()

    def _verdict(self, item: Work[TicketEnvelope]) -> records.Entries:
        envelope = item.value
        started = time.perf_counter()
        results = verify(self.checks, envelope)
        latency_ms = (time.perf_counter() - started) * 1000
        reasons = failing_reasons(results)
        ticket_id = envelope.ticket.ticket_id
        decision = records.Decision(
            ticket_id, self.stage, keys.verify(envelope.attempt), "verifier", self.version,
            inputs={"handler": envelope.draft.handler if envelope.draft else None,
                    "answer_chars": len(envelope.draft.answer) if envelope.draft else 0},
            output={
                "passed": not reasons,
                "reasons": reasons,
                "checks": [
                    {"check": r.check, "version": r.version, "passed": r.passed,
                     "reasons": list(r.reasons), "details": r.details}
                    for r in results
                ],
            },
            reason="every check passed" if not reasons else "; ".join(reasons),
            latency_ms=latency_ms, trace_id=item.trace_id,
        )
        return records.Entries(decisions=[decision], accountability=[records.AccountabilityEntry(
            ticket_id, keys.event("verifier", envelope.attempt, "verify"), "verifier",
            "approve" if not reasons else "escalate", self.version, {"reasons": reasons})])


def _hand_off(stage: str, item: Work[TicketEnvelope], costs: dict[str, Decimal],
              stored: dict[str, Any]) -> records.Publication | records.OutcomeEntry:
    """A passed draft becomes the `resolved` outcome; a failed one goes to a person."""
    envelope = item.value
    if not stored["passed"]:
        request = EscalationRequest(envelope=envelope, source_stage=stage,
                                    reasons=stored["reasons"])
        return records.escalation_publication(request, item.trace_headers)
    assert envelope.classification is not None and envelope.draft is not None
    return records.automation_outcome(
        envelope, OutcomeStatus.RESOLVED, costs.get(envelope.ticket.ticket_id, Decimal(0)),
        item.trace_headers, handler=envelope.draft.handler, answer=envelope.draft.answer)


def _observe(recorded: records.Recorded) -> None:
    observe_verdicts([decision.row() for decision in recorded.new_decisions])
