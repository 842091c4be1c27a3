"""The escalation stage: store each escalated ticket with its full context in the human
queue and publish the `escalated` outcome."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pinworks_common import provenance
from pinworks_common.customer_state import CustomerStateReader, recorded_states, state_ref
from pinworks_common.ledger import (
    AccountabilityEntry,
    Decision,
    Entries,
    Ledger,
    OutcomeEntry,
    Publication,
    automation_outcome,
    handoff_publication,
    keys,
)
from pinworks_common.stage import Delivery, Work, decode_model
from pinworks_contracts.messages import CustomerState, EscalationRequest, utcnow
from pinworks_contracts.subjects import ASSIST_REQUESTED, OutcomeStatus, Stage, assist_message_id
from pinworks_escalation.queue.priority import queue_row

VERSION = "escalation-3"


class EscalationStage:
    """Priority and SLA come from the customer-state reading the classifier stage recorded
    (read from the ticket's text only for a ticket that has none), never from the message."""

    stage = Stage.ESCALATION.value

    def __init__(self, reader: CustomerStateReader | None = None) -> None:
        self.reader = reader or CustomerStateReader()

    def decode(self, delivery: Delivery) -> EscalationRequest:
        request: EscalationRequest = decode_model(EscalationRequest, delivery)
        return request

    async def apply(self, ledger: Ledger, work: Sequence[Work[EscalationRequest]]) -> Entries:
        """Queue each ticket once per automation attempt: a later attempt (the ticket was sent
        back to automation and escalated again) reopens the row, keeping the agents'
        corrections in its context. A request no stored automation step made is refused (see
        `provenance`): it never touches the queue row or an agent's claim."""
        now = utcnow()
        work, entries = await self._recorded(ledger, work)
        ids = [item.value.envelope.ticket.ticket_id for item in work]
        states = await recorded_states(ledger, ids)
        rows = []
        for item in work:
            ticket = item.value.envelope.ticket
            recorded = states.get(ticket.ticket_id)
            state = recorded or self.reader.read(ticket.subject, ticket.body)
            row = queue_row(item.value, state, now)
            rows.append(row)
            entries.extend(self._enqueued(item, row, state, recorded is not None))
        await ledger.supersede("escalations", rows, version="attempt",
                               keep=("business_unit", "trace_id"), merge=("context",),
                               clear=("claimed_by", "lease_expires_at"))
        costs = await ledger.costs(ids)
        for item in work:
            entries.outcomes.append(_outcome(item, costs))
            entries.publications.append(assist_publication(item))
        return entries

    async def _recorded(self, ledger: Ledger, work: Sequence[Work[EscalationRequest]]
                        ) -> tuple[list[Work[EscalationRequest]], Entries]:
        """The requests a stored step made, on the recorded ticket, and for attempt 0 on the
        classifier's recorded reading (the queue row and the assist request carry that, never
        the message's; a later attempt keeps the agent's classification the router was handed,
        which the queue row records only in part); the audit of the others.

        The queue rows are read only for later attempts (attempt 0 exists for every accepted
        ticket), and the dead letters only for the requests no stored decision accounts for
        (a stage that gave up hands its ticket on without one): a batch of first escalations
        that stored decisions account for reads neither, two statements fewer, and every
        request is judged on the same records as before."""
        ids = {item.value.envelope.ticket.ticket_id for item in work}
        tickets = await provenance.recorded_tickets(ledger, ids)
        queue = await provenance.recorded_queue(
            ledger, {item.value.envelope.ticket.ticket_id for item in work
                     if item.value.envelope.attempt})
        stored = await ledger.decided([  # the readings too: `recorded_states` finds them read
            *(ref for item in work for ref in provenance.escalation_refs(item.value)),
            *map(state_ref, ids)])

        def refusal(request: EscalationRequest, dead: dict[str, set[str]]
                    ) -> provenance.Refusal | None:
            ticket_id = request.envelope.ticket.ticket_id
            return provenance.escalation_refusal(request, tickets.get(ticket_id),
                                                 queue.get(ticket_id), stored,
                                                 dead.get(ticket_id, set()))

        dead = await provenance.dead_lettered_stages(
            ledger, {item.value.envelope.ticket.ticket_id for item in work
                     if refusal(item.value, {}) is not None})
        recorded, refusals = [], provenance.Refusals(self.stage)
        for item in work:
            request = item.value
            refused = refusal(request, dead)
            if refused is None:
                ticket = tickets[request.envelope.ticket.ticket_id]
                update: dict[str, Any] = {"ticket": ticket.ticket, "platform": ticket.platform}
                if not request.envelope.attempt:
                    update["classification"] = ticket.classification
                envelope = request.envelope.model_copy(update=update)
                recorded.append(Work(item.delivery, request.model_copy(
                    update={"envelope": envelope}), item.span))
                continue
            refusals.refuse(request.envelope.ticket.ticket_id, item.delivery, refused)
        return recorded, refusals.audited()

    def _enqueued(self, item: Work[EscalationRequest], row: dict[str, Any],
                  state: CustomerState, state_recorded: bool) -> Entries:
        request = item.value
        ticket_id, attempt = request.envelope.ticket.ticket_id, request.envelope.attempt
        priority, because = row["priority"], row["context"]["priority_because"]
        sla_due_at = row["sla_due_at"].isoformat()
        return Entries(
            decisions=[Decision(
                ticket_id, self.stage, keys.enqueue(attempt), "escalation", VERSION,
                inputs={"source_stage": request.source_stage,
                        "customer_state": state.model_dump(mode="json"),
                        "customer_state_recorded": state_recorded},
                output={"priority": priority, "priority_because": because,
                        "reasons": request.reasons, "tier": row["tier"],
                        "sla_due_at": sla_due_at},
                reason=f"queued for a person at priority {priority}"
                + (f" (ahead: {'; '.join(because)})" if because else "")
                + ": " + "; ".join(request.reasons),
                trace_id=item.trace_id,
            )],
            accountability=[AccountabilityEntry(
                ticket_id, keys.event("escalation", attempt, "enqueue"), "escalation", "enqueue",
                VERSION, {"priority": priority, "sla_due_at": sla_due_at})],
        )


def _outcome(item: Work[EscalationRequest], costs: dict[str, Decimal]) -> OutcomeEntry:
    envelope = item.value.envelope
    return automation_outcome(
        envelope, OutcomeStatus.ESCALATED, costs.get(envelope.ticket.ticket_id, Decimal(0)),
        item.trace_headers, handler="human", reasons=item.value.reasons)


def assist_publication(item: Work[EscalationRequest]) -> Publication:
    """Ask the specialists for the agent's suggested reply (template, passages, drafts)."""
    request = item.value
    return handoff_publication(
        request, subject=ASSIST_REQUESTED, headers=item.trace_headers,
        msg_id=assist_message_id(request.envelope.ticket.ticket_id, request.envelope.attempt))
