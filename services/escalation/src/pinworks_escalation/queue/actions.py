"""Agents' actions on the queue: claim, release, reassign and resolve.

Claims take a lease with `FOR UPDATE SKIP LOCKED`, so two agents never hold the same ticket;
an expired lease puts the ticket back in the queue. Resolving writes the human outcome and its
outbox row in one transaction: the escalation service's relay publishes it. Every action is
recorded in `accountability`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.records import costs_by_ticket, record_accountability, record_costs, record_outcomes
from pinworks_common.db.tables import escalations
from pinworks_common.pricing import AGENT_COMPONENT
from pinworks_common.quality.store import QualityError, intent_name, record_correction
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import Outcome, utcnow
from pinworks_contracts.subjects import OutcomeStatus
from pinworks_escalation.queue.agent_store import get_agent
from pinworks_escalation.queue.handoff import HUMAN_OUTCOME_KEY, to_outbox
from pinworks_escalation.queue.items import (
    CLAIMED,
    OPEN,
    RESOLVED,
    NotQueued,
    QueueError,
    QueueItem,
    item_from_row,
)
from pinworks_escalation.queue.listing import QUEUE_ORDER, claimable, scoped

DEFAULT_LEASE = timedelta(minutes=15)


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
    candidate = select(escalations.c.ticket_id).where(claimable(now))
    if ticket_id is not None:
        candidate = candidate.where(escalations.c.ticket_id == ticket_id)
    candidate = scoped(candidate, business_units).order_by(*QUEUE_ORDER).limit(1).with_for_update(
        skip_locked=True)
    row = (await conn.execute(
        update(escalations)
        .where(escalations.c.ticket_id == candidate.scalar_subquery())
        .values(status=CLAIMED, claimed_by=agent, lease_expires_at=now + lease)
        .returning(*escalations.c)
    )).first()
    if row is None:
        return None
    await account(conn, row.ticket_id, agent, "claim", {"lease_expires_at": str(now + lease)})
    return item_from_row(row)


async def release(
    conn: AsyncConnection, ticket_id: str, agent: str, *,
    business_units: Sequence[str] | None = None,
) -> None:
    await locked(conn, ticket_id, business_units)
    result = await conn.execute(
        update(escalations)
        .where(escalations.c.ticket_id == ticket_id, escalations.c.status == CLAIMED,
               escalations.c.claimed_by == agent)
        .values(status=OPEN, claimed_by=None, lease_expires_at=None)
    )
    if result.rowcount == 0:
        raise QueueError(f"{agent} does not hold a claim on {ticket_id}", "not_holder")
    await account(conn, ticket_id, agent, "release", {})


async def locked(
    conn: AsyncConnection, ticket_id: str, business_units: Sequence[str] | None
) -> Any:
    """The ticket's row, locked for this transaction; NotQueued if the agent cannot see it."""
    query = select(escalations).where(escalations.c.ticket_id == ticket_id).with_for_update()
    row = (await conn.execute(scoped(query, business_units))).first()
    if row is None:
        raise NotQueued(f"no escalated ticket {ticket_id}")
    return row


def holds(row: Any, agent: str | None, now: datetime) -> bool:
    """Whether `agent` holds the row's claim (a claim without a lease end never expires)."""
    return bool(row.status == CLAIMED and row.claimed_by == agent and (
        row.lease_expires_at is None or row.lease_expires_at >= now))


def check_held(row: Any, agent: str, now: datetime, doing: str) -> None:
    """Refuse to act on a resolved ticket, or on one the agent does not hold."""
    if row.status == RESOLVED:
        raise QueueError(f"{row.ticket_id} was already resolved by {row.resolved_by}", "resolved")
    if not holds(row, agent, now):
        raise QueueError(f"{agent} must claim {row.ticket_id} before {doing}", "not_holder")


async def reassign(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    to_agent: str,
    *,
    business_units: Sequence[str] | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> QueueItem:
    """Hand a ticket to a colleague who serves its business unit: the holder of a live claim
    may hand it on; an unclaimed (or expired) ticket may be assigned by any agent of the unit."""
    now = utcnow()
    row = await locked(conn, ticket_id, business_units)
    if row.status == RESOLVED:
        raise QueueError(f"{ticket_id} was already resolved by {row.resolved_by}", "resolved")
    if row.status == CLAIMED and row.lease_expires_at is not None \
            and row.lease_expires_at >= now and row.claimed_by != agent:
        raise QueueError(f"{ticket_id} is claimed by {row.claimed_by}; only they can reassign it",
                         "held")
    target = await get_agent(conn, to_agent)
    if target is None:
        raise QueueError(f"no agent {to_agent}", "no_agent")
    if row.business_unit not in target.business_units:
        raise QueueError(f"{to_agent} does not serve business unit {row.business_unit}",
                         "not_in_unit")
    if to_agent == agent and holds(row, agent, now):
        raise QueueError(f"{ticket_id} is already yours", "already_yours")
    updated = (await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id)
        .values(status=CLAIMED, claimed_by=to_agent, lease_expires_at=now + lease)
        .returning(*escalations.c)
    )).one()
    await account(conn, ticket_id, agent, "reassign", {
        "from": row.claimed_by if holds(row, row.claimed_by, now) else None,
        "to": to_agent, "lease_expires_at": str(now + lease)})
    return item_from_row(updated)


async def resolve(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    reply: str,
    *,
    agent_cost: Decimal = Decimal(0),
    business_units: Sequence[str] | None = None,
    assist: dict[str, Any] | None = None,
    intent: str | None = None,
) -> Outcome:
    """Resolve a ticket the agent holds; the human `resolved` outcome goes out via the outbox.

    `intent` is what the agent says the ticket was about (default: its classification); an
    automatic answer the ticket had with another intent counts as wrong in the live quality
    estimate. `assist` says how the reply relates to the suggested replies (which one the
    agent started from, how similar the sent text is); it is kept with the `resolve` action
    for the per-intent usefulness report (`assist_usefulness`)."""
    if not reply.strip():
        raise QueueError("a resolution needs a reply to the customer", "empty_reply")
    try:
        intent = intent_name(intent) if intent else None
    except QualityError as error:
        raise QueueError(str(error), "bad_intent") from None
    now = utcnow()
    row = await locked(conn, ticket_id, business_units)
    check_held(row, agent, now, "resolving it")
    await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id).values(
            status=RESOLVED, resolved_by=agent, reply=reply, resolved_at=now,
            lease_expires_at=None,
        )
    )
    if agent_cost:
        await record_costs(conn, [{
            "ticket_id": ticket_id, "business_unit": row.business_unit,
            "component": AGENT_COMPONENT, "entry_key": "agent", "amount_usd": agent_cost,
        }])
    cost = (await costs_by_ticket(conn, [ticket_id])).get(ticket_id, Decimal(0))
    outcome = resolved_outcome(row, agent, reply, cost, now)
    if intent:
        outcome = outcome.model_copy(update={"intent": intent})
    [(stored, publication)] = await record_outcomes(conn, [(HUMAN_OUTCOME_KEY, outcome)])
    await to_outbox(conn, publication)
    if stored.intent:  # the ticket's automatic answer, if it had another intent, was wrong
        await record_correction(conn, ticket_id, agent, stored.intent)
    details: dict[str, Any] = {"reply_chars": len(reply), "intent": outcome.intent}
    if assist is not None:
        details["assist"] = assist
    await account(conn, ticket_id, agent, "resolve", details)
    return stored


def resolved_outcome(row: Any, agent: str, reply: str, cost: Decimal, now: datetime) -> Outcome:
    """The public outcome of an agent's reply to the queued ticket `row`."""
    envelope = row.context.get("envelope", {})
    classification = envelope.get("classification") or {}
    return Outcome(
        ticket_id=row.ticket_id,
        platform=envelope.get("platform") or DEFAULT_PLATFORM,
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


async def account(
    conn: AsyncConnection, ticket_id: str, agent: str, action: str, details: dict[str, Any]
) -> None:
    """Record who did what to the ticket."""
    await record_accountability(conn, [{
        "ticket_id": ticket_id,
        "event_key": f"agent:{action}:{uuid.uuid4()}",
        "actor_type": "person",
        "actor": agent,
        "action": action,
        "version": None,
        "details": details,
    }])
