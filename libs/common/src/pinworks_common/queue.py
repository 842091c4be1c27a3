"""The human escalation queue in Postgres, shared by the escalation service and the CLI.

Claims take a lease with `FOR UPDATE SKIP LOCKED`, so two agents never hold the same ticket;
an expired lease puts the ticket back in the queue. Resolving writes the human outcome and its
outbox row in one transaction: the escalation service's relay publishes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import Outcome, utcnow
from pinworks_common.db.records import (
    costs_by_ticket,
    record_accountability,
    record_costs,
    record_outcomes,
)
from pinworks_common.db.tables import escalations, outbox
from pinworks_common.subjects import OUTCOMES_STREAM, OutcomeStatus, outcome_subject

OPEN, CLAIMED, RESOLVED = "open", "claimed", "resolved"
HUMAN_OUTCOME_KEY = "human"
DEFAULT_LEASE = timedelta(minutes=15)


class QueueError(ValueError):
    """An action the queue refuses, with the reason for the agent."""


@dataclass(frozen=True)
class QueueItem:
    ticket_id: str
    business_unit: str
    status: str
    priority: int
    source_stage: str
    reasons: list[str]
    claimed_by: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    context: dict[str, Any]


def priority_for(reasons: Sequence[str], metadata: dict[str, Any]) -> int:
    """Higher first: people at risk or threatening action before routine uncertainty."""
    text = " ".join(reasons).lower()
    priority = 50
    if any(signal in text for signal in ("vulnerability", "legal threat", "fraud")):
        priority += 40
    if "negative sentiment" in text:
        priority += 20
    if str(metadata.get("tier", "")).lower() in {"premium", "vip", "business"}:
        priority += 10
    return min(priority, 100)


def _item(row: Any) -> QueueItem:
    return QueueItem(
        ticket_id=row.ticket_id,
        business_unit=row.business_unit,
        status=row.status,
        priority=row.priority,
        source_stage=row.source_stage,
        reasons=list(row.reasons),
        claimed_by=row.claimed_by,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        context=dict(row.context),
    )


def _claimable(now: datetime) -> Any:
    return or_(
        escalations.c.status == OPEN,
        and_(escalations.c.status == CLAIMED, escalations.c.lease_expires_at < now),
    )


def _scoped(query: Any, business_units: Sequence[str] | None) -> Any:
    if business_units is not None:
        query = query.where(escalations.c.business_unit.in_(list(business_units)))
    return query


async def list_queue(
    conn: AsyncConnection,
    *,
    business_units: Sequence[str] | None = None,
    include_resolved: bool = False,
    limit: int = 100,
) -> list[QueueItem]:
    query = select(escalations).order_by(
        escalations.c.priority.desc(), escalations.c.created_at
    ).limit(limit)
    if not include_resolved:
        query = query.where(escalations.c.status != RESOLVED)
    rows = await conn.execute(_scoped(query, business_units))
    return [_item(row) for row in rows]


async def get_item(conn: AsyncConnection, ticket_id: str) -> QueueItem | None:
    row = (await conn.execute(select(escalations).where(escalations.c.ticket_id == ticket_id))
           ).first()
    return _item(row) if row else None


async def claim(
    conn: AsyncConnection,
    agent: str,
    *,
    ticket_id: str | None = None,
    business_units: Sequence[str] | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> QueueItem | None:
    """Claim one ticket (the given one, or the most urgent claimable); None if none is free."""
    now = utcnow()
    candidate = select(escalations.c.ticket_id).where(_claimable(now))
    if ticket_id is not None:
        candidate = candidate.where(escalations.c.ticket_id == ticket_id)
    candidate = _scoped(candidate, business_units).order_by(
        escalations.c.priority.desc(), escalations.c.created_at
    ).limit(1).with_for_update(skip_locked=True)
    row = (await conn.execute(
        update(escalations)
        .where(escalations.c.ticket_id == candidate.scalar_subquery())
        .values(status=CLAIMED, claimed_by=agent, lease_expires_at=now + lease)
        .returning(*escalations.c)
    )).first()
    if row is None:
        return None
    await _account(conn, row.ticket_id, agent, "claim", {"lease_expires_at": str(now + lease)})
    return _item(row)


async def release(conn: AsyncConnection, ticket_id: str, agent: str) -> None:
    result = await conn.execute(
        update(escalations)
        .where(escalations.c.ticket_id == ticket_id, escalations.c.status == CLAIMED,
               escalations.c.claimed_by == agent)
        .values(status=OPEN, claimed_by=None, lease_expires_at=None)
    )
    if result.rowcount == 0:
        raise QueueError(f"{agent} does not hold a claim on {ticket_id}")
    await _account(conn, ticket_id, agent, "release", {})


async def resolve(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    reply: str,
    *,
    agent_cost: Decimal = Decimal(0),
) -> Outcome:
    """Resolve a ticket the agent holds; the human `resolved` outcome goes out via the outbox."""
    if not reply.strip():
        raise QueueError("a resolution needs a reply to the customer")
    now = utcnow()
    row = (await conn.execute(
        select(escalations).where(escalations.c.ticket_id == ticket_id).with_for_update()
    )).first()
    if row is None:
        raise QueueError(f"no escalated ticket {ticket_id}")
    if row.status == RESOLVED:
        raise QueueError(f"{ticket_id} was already resolved by {row.resolved_by}")
    holds_claim = row.status == CLAIMED and row.claimed_by == agent and (
        row.lease_expires_at is None or row.lease_expires_at >= now
    )
    if not holds_claim:
        raise QueueError(f"{agent} must claim {ticket_id} before resolving it")
    await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id).values(
            status=RESOLVED, resolved_by=agent, reply=reply, resolved_at=now,
            lease_expires_at=None,
        )
    )
    if agent_cost:
        await record_costs(conn, [{
            "ticket_id": ticket_id, "business_unit": row.business_unit,
            "component": "agent", "entry_key": "agent", "amount_usd": agent_cost,
        }])
    envelope = row.context.get("envelope", {})
    classification = envelope.get("classification") or {}
    cost = (await costs_by_ticket(conn, [ticket_id])).get(ticket_id, Decimal(0))
    outcome = Outcome(
        ticket_id=ticket_id,
        status=OutcomeStatus.RESOLVED,
        business_unit=row.business_unit,
        intent=classification.get("intent"),
        confidence=classification.get("confidence"),
        handler="human",
        answer=reply,
        cost_usd=cost,
        resolved_by=agent,
        trace_id=row.trace_id,
        decided_at=now,
    )
    [stored] = await record_outcomes(conn, [(HUMAN_OUTCOME_KEY, outcome)])
    await conn.execute(insert(outbox).values(
        subject=outcome_subject(OutcomeStatus.RESOLVED),
        msg_id=f"{ticket_id}:outcome:{HUMAN_OUTCOME_KEY}",
        payload=stored.model_dump_json().encode(),
        headers={"Pinworks-Stream": OUTCOMES_STREAM},
    ).on_conflict_do_nothing(index_elements=["msg_id"]))
    await _account(conn, ticket_id, agent, "resolve", {"reply_chars": len(reply)})
    return stored


async def pending_count(conn: AsyncConnection, business_units: Sequence[str] | None = None) -> int:
    query = select(func.count()).select_from(escalations).where(escalations.c.status != RESOLVED)
    return int((await conn.execute(_scoped(query, business_units))).scalar_one())


async def _account(
    conn: AsyncConnection, ticket_id: str, agent: str, action: str, details: dict[str, Any]
) -> None:
    await record_accountability(conn, [{
        "ticket_id": ticket_id,
        "event_key": f"agent:{action}:{uuid.uuid4()}",
        "actor_type": "person",
        "actor": agent,
        "action": action,
        "version": None,
        "details": details,
    }])
