"""What an agent reads beside a queued ticket: everything decided about it so far, and the
customer's other tickets."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Table, func, select
from sqlalchemy import true as sa_true
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import (
    accountability,
    cost_ledger,
    decision_originals,
    decisions,
    escalations,
    tickets,
)
from pinworks_common.db.tables import outcomes as outcome_table
from pinworks_contracts.intents import intent_label
from pinworks_escalation.queue.items import iso


async def ticket_context(conn: AsyncConnection, ticket_id: str) -> dict[str, Any]:
    """Everything decided about a ticket so far, for the agent: each stage's decision with its
    reason and version, the cost lines and total, the outcomes sent, and who did what."""
    decision_rows = await _decisions_of_ticket(conn, ticket_id)
    cost_rows = await _rows_of_ticket(conn, cost_ledger, ticket_id,
                                      "component", "entry_key", "amount_usd", "created_at")
    action_rows = await _rows_of_ticket(conn, accountability, ticket_id)
    outcome_rows = await _rows_of_ticket(conn, outcome_table, ticket_id,
                                         "outcome_key", "status", "payload", "created_at")
    return {
        "decisions": [{
            "stage": r.stage, "decision_key": r.decision_key, "component": r.component,
            "version": r.version, "reason": r.reason, "inputs": r.inputs, "output": r.output,
            "cost_usd": float(r.cost_usd), "latency_ms": r.latency_ms,
            "created_at": iso(r.created_at)} for r in decision_rows],
        "costs": [{"component": r.component, "entry_key": r.entry_key,
                   "amount_usd": float(r.amount_usd), "created_at": iso(r.created_at)}
                  for r in cost_rows],
        "cost_usd": float(sum((Decimal(r.amount_usd) for r in cost_rows), Decimal(0))),
        "outcomes": [{"key": r.outcome_key, "status": r.status, "payload": r.payload,
                      "created_at": iso(r.created_at)} for r in outcome_rows],
        "actions": [{"actor_type": r.actor_type, "actor": r.actor, "action": r.action,
                     "details": r.details, "at": iso(r.created_at)} for r in action_rows],
    }


async def _decisions_of_ticket(conn: AsyncConnection, ticket_id: str) -> Sequence[Any]:
    """The ticket's decisions in the order they were written, each output as the stage made it:
    the audit keeps a redacted copy, the agent (who answers this customer) reads the original
    while it has not been erased."""
    original = decision_originals.c
    output = func.coalesce(original.output, decisions.c.output).label("output")
    query = (
        select(*(column for column in decisions.c if column.name != "output"), output)
        .outerjoin(decision_originals, (original.ticket_id == decisions.c.ticket_id)
                   & (original.stage == decisions.c.stage)
                   & (original.decision_key == decisions.c.decision_key))
        .where(decisions.c.ticket_id == ticket_id).order_by(decisions.c.id)
    )
    return (await conn.execute(query)).all()


async def _rows_of_ticket(conn: AsyncConnection, table: Table, ticket_id: str,
                          *columns: str) -> Sequence[Row[Any]]:
    """The ticket's rows of `table` in the order they were written: the named columns, or all."""
    query = select(*(table.c[name] for name in columns)) if columns else select(table)
    return (await conn.execute(
        query.where(table.c.ticket_id == ticket_id).order_by(table.c.id)
    )).all()


async def customer_history(
    conn: AsyncConnection, customer_id: str, *, exclude: str | None = None,
    business_units: Sequence[str] | None = None, limit: int = 20,
) -> list[dict[str, Any]]:
    """The customer's other tickets (newest first) with their latest outcome, limited to the
    business units the agent serves."""
    latest = (
        select(outcome_table.c.status, outcome_table.c.payload, outcome_table.c.created_at)
        .where(outcome_table.c.ticket_id == tickets.c.ticket_id)
        .order_by(outcome_table.c.id.desc()).limit(1).lateral("latest")
    )
    query = (
        select(tickets.c.ticket_id, tickets.c.business_unit, tickets.c.subject,
               tickets.c.intent, tickets.c.received_at, latest.c.status, latest.c.payload,
               escalations.c.status.label("queue_status"))
        .select_from(tickets.outerjoin(latest, sa_true())
                     .outerjoin(escalations, escalations.c.ticket_id == tickets.c.ticket_id))
        .where(tickets.c.customer_id == customer_id)
        .order_by(tickets.c.received_at.desc()).limit(limit)
    )
    if exclude is not None:
        query = query.where(tickets.c.ticket_id != exclude)
    if business_units is not None:
        query = query.where(tickets.c.business_unit.in_(list(business_units)))
    rows = (await conn.execute(query)).all()
    return [{
        "ticket_id": r.ticket_id, "business_unit": r.business_unit, "subject": r.subject,
        "intent": r.intent, "intent_label": intent_label(r.intent),
        "received_at": iso(r.received_at), "status": r.status or "in progress",
        "resolved_by": (r.payload or {}).get("resolved_by"),
        "answer": (r.payload or {}).get("answer"),
        "reasons": (r.payload or {}).get("reasons", []),
        "in_queue": r.queue_status is not None, "queue_status": r.queue_status,
    } for r in rows]
