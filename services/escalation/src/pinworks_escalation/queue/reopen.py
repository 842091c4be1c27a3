"""Reopening: an agent puts a ticket automation answered back in the human queue.

A customer who says the automatic answer missed the question needs a person. The ticket is
queued again (open, at the answered attempt, priority and SLA as the escalation stage gives
them) from stored state only: the recorded ticket, the classification the answer ran on (the
queue row's, when an agent corrected it before) and the customer-state reading. Whoever then
resolves it with another intent than the automatic answer's, or sends it back with one, makes
that answer count as wrong in the live quality estimate (`pinworks_common.quality`), once.
Only a ticket whose latest outcome is an automatic answer can be reopened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common import provenance
from pinworks_common.customer_state import DECISION_KEY, CustomerStateReader
from pinworks_common.db.tables import decisions, escalations, outcomes, tickets
from pinworks_common.quality.store import AutomaticAnswer, automatic_answers
from pinworks_contracts.messages import (
    Classification,
    CustomerState,
    EscalationRequest,
    TicketEnvelope,
    utcnow,
)
from pinworks_contracts.subjects import Stage
from pinworks_escalation.queue.actions import account
from pinworks_escalation.queue.items import NotQueued, QueueError, QueueItem, item_from_row
from pinworks_escalation.queue.priority import queue_row

SOURCE = "reopen"


async def _latest_outcome_key(conn: AsyncConnection, ticket_id: str) -> str | None:
    return (await conn.execute(
        select(outcomes.c.outcome_key).where(outcomes.c.ticket_id == ticket_id)
        .order_by(outcomes.c.id.desc()).limit(1))).scalar_one_or_none()


async def last_automatic_answer(conn: AsyncConnection, ticket_id: str) -> AutomaticAnswer | None:
    """The ticket's automatic answer if its latest outcome is that answer (what `reopen` takes);
    None when automation never answered it or a person or a later attempt did since."""
    answer = (await automatic_answers(conn, [ticket_id])).get(ticket_id)
    latest = await _latest_outcome_key(conn, ticket_id)
    if answer is None or latest != "automation" + (f"@{answer.attempt}" if answer.attempt else ""):
        return None
    return answer


async def _customer_state(conn: AsyncConnection, record: provenance.TicketRecord) -> CustomerState:
    """The classifier stage's recorded reading; read from the text only when it has none."""
    output = (await conn.execute(
        select(decisions.c.output).where(
            decisions.c.ticket_id == record.ticket.ticket_id,
            decisions.c.stage == Stage.CLASSIFIER.value, decisions.c.decision_key == DECISION_KEY)
    )).scalar_one_or_none()
    if output:
        return CustomerState.model_validate(output)
    return CustomerStateReader().read(record.ticket.subject, record.ticket.body)


async def reopen(conn: AsyncConnection, ticket_id: str, agent: str, reason: str, *,
                 business_units: Sequence[str] | None = None) -> QueueItem:
    """Queue an automatically answered ticket for a person again, recorded with why."""
    if not reason.strip():
        raise QueueError("say why the ticket goes back to a person (--reason)", "empty_reason")
    row = (await conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).first()
    if row is None or (business_units is not None and row.business_unit not in business_units):
        raise NotQueued(f"no ticket {ticket_id}")
    answer = await last_automatic_answer(conn, ticket_id)
    if answer is None:
        raise QueueError(f"{ticket_id} was not last answered by automation", "not_automatic")
    record = provenance.ticket_record(dict(row._mapping))
    queued = (await conn.execute(select(escalations.c.context)
                                 .where(escalations.c.ticket_id == ticket_id))).first()
    earlier: dict[str, Any] = dict(queued.context) if queued else {}
    classification = (earlier.get("envelope") or {}).get("classification")
    envelope = TicketEnvelope(
        ticket=record.ticket, platform=record.platform, trace_id=record.trace_id,
        received_at=row.received_at,
        attempt=answer.attempt, classification=Classification.model_validate(classification)
        if classification else record.classification)
    request = EscalationRequest(envelope=envelope, source_stage=SOURCE,
                                reasons=[f"reopened by {agent}: {reason.strip()}"])
    values = queue_row(request, await _customer_state(conn, record), utcnow())
    values["context"] = {**earlier, **values["context"],
                         "reopened": {"by": agent, "reason": reason.strip(),
                                      "answer": {"handler": answer.handler,
                                                 "intent": answer.intent}}}
    reset = {"claimed_by": None, "lease_expires_at": None, "resolved_by": None, "reply": None,
             "resolved_at": None}
    stored = (await conn.execute(
        insert(escalations).values(**values)
        .on_conflict_do_update(index_elements=["ticket_id"], set_={**values, **reset})
        .returning(*escalations.c))).one()
    await account(conn, ticket_id, agent, "reopen", {
        "reason": reason.strip(), "attempt": answer.attempt, "intent": answer.intent})
    return item_from_row(stored)
