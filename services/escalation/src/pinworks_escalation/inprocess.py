"""The escalation stage's step of `pinworks bench`'s in-process baseline: the queueing decision
(priority, what put the ticket ahead, SLA, the queue row's context) of each ticket of a batch the
route sends to a person, by the same `queue_row` the stage applies, without NATS or Postgres.

The stage reads the customer state the classifier recorded; here it is the envelope's own
reading (read from the text only when there is none, as the stage does). Tickets routed to a
handler pass on untouched, as the stage only receives the ones that go to a person. A draft the
verifier turns away also goes to a person on the platform; the baseline's verifier step keeps no
verdict, so that case is not in it.

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pinworks_contracts.messages import TicketEnvelope

QueueRecord = Callable[[dict[str, Any]], None]


def escalate_step(record: QueueRecord | None = None
                  ) -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """The step decides the queue row of every envelope of a batch routed to a person and hands
    it to `record` (if given; the bench keeps none); the batch passes on unchanged."""
    from pinworks_common.customer_state import CustomerStateReader, state_reasons
    from pinworks_common.provenance import HUMAN
    from pinworks_contracts.messages import EscalationRequest, utcnow
    from pinworks_contracts.subjects import Stage
    from pinworks_escalation.queue.priority import queue_row

    reader = CustomerStateReader()

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        now = utcnow()
        for envelope in batch:
            route = envelope.route
            if route is None or route.handler != HUMAN:
                continue
            request = EscalationRequest(  # what the router hands the stage
                envelope=envelope, source_stage=Stage.ROUTER.value,
                reasons=[f"routed to a person by rule {route.rule}: {route.reason}",
                         *state_reasons(envelope.customer_state)])
            ticket = envelope.ticket
            state = envelope.customer_state or reader.read(ticket.subject, ticket.body)
            row = queue_row(request, state, now)
            if record is not None:
                record(row)
        return list(batch)

    return step
