"""The human escalation queue in Postgres, shared by the escalation service and the CLI.

Claims take a lease with `FOR UPDATE SKIP LOCKED`, so two agents never hold the same ticket;
an expired lease puts the ticket back in the queue. Resolving writes the human outcome and its
outbox row in one transaction: the escalation service's relay publishes it.

Order: priority (customer state and tier), then the SLA due time, then age. Every agent action
(claim, release, reassign, resolve, send back) is recorded in `accountability`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import true as sa_true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import CustomerState, Outcome, TicketEnvelope, utcnow
from pinworks_common.customer_state import signal_reason
from pinworks_common.db.records import (
    costs_by_ticket,
    record_accountability,
    record_costs,
    record_outcomes,
)
from pinworks_common.db.tables import (
    accountability,
    agents,
    cost_ledger,
    decisions,
    escalations,
    labelled_examples,
    outbox,
)
from pinworks_common.intents import intent_label
from pinworks_common.subjects import (
    CLASSIFIED,
    OUTCOMES_STREAM,
    WORK_STREAM,
    OutcomeStatus,
    outcome_subject,
)

OPEN, CLAIMED, RESOLVED = "open", "claimed", "resolved"
RETURNED = "returned"
"""Sent back to automation with a corrected intent; a new escalation reopens it."""
HUMAN_OUTCOME_KEY = "human"
DEFAULT_LEASE = timedelta(minutes=15)
PREMIUM_TIERS = frozenset({"premium", "vip", "business"})
AGENT_NAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"


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
    sla_due_at: datetime | None = None
    tier: str | None = None
    resolved_by: str | None = None
    reply: str | None = None
    resolved_at: datetime | None = None
    trace_id: str | None = None

    def overdue(self, now: datetime | None = None) -> bool:
        return (self.status != RESOLVED and self.sla_due_at is not None
                and self.sla_due_at < (now or utcnow()))

    def sla_status(self, now: datetime | None = None) -> str | None:
        """`met` (answered in time), `breached` (answered late, or still waiting past due) or
        `due` (still waiting, in time); None without an SLA."""
        if self.sla_due_at is None:
            return None
        if self.status == RESOLVED:
            answered = self.resolved_at or now or utcnow()
            return "met" if answered <= self.sla_due_at else "breached"
        return "breached" if self.sla_due_at < (now or utcnow()) else "due"

    def lease_live(self, now: datetime | None = None) -> bool:
        return (self.status == CLAIMED and self.lease_expires_at is not None
                and self.lease_expires_at >= (now or utcnow()))

    def holder(self, now: datetime | None = None) -> str | None:
        """The agent whose lease is live, if any (an expired lease holds nothing)."""
        return self.claimed_by if self.lease_live(now) else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the context) for the CLI and the REST API."""
        envelope = self.context.get("envelope", {})
        classification = envelope.get("classification") or {}
        return {
            "ticket_id": self.ticket_id, "business_unit": self.business_unit,
            "status": self.status, "priority": self.priority, "tier": self.tier,
            "source_stage": self.source_stage, "reasons": self.reasons,
            "claimed_by": self.holder(), "lease_expires_at": _iso(self.lease_expires_at),
            "sla_due_at": _iso(self.sla_due_at), "overdue": self.overdue(),
            "sla_status": self.sla_status(),
            "priority_because": list(self.context.get("priority_because", [])),
            "intent": classification.get("intent"),
            "intent_label": intent_label(classification.get("intent")),
            "customer_id": envelope.get("ticket", {}).get("customer_id"),
            "confidence": classification.get("confidence"),
            "subject": envelope.get("ticket", {}).get("subject"),
            "created_at": _iso(self.created_at), "resolved_by": self.resolved_by,
            "resolved_at": _iso(self.resolved_at), "trace_id": self.trace_id,
        }


@dataclass(frozen=True)
class Agent:
    name: str
    password_hash: str
    business_units: tuple[str, ...]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


URGENT_SIGNALS = ("legal_threat", "fraud", "vulnerability")
URGENT_TEXT = {"legal threat": "legal threat", "fraud": "fraud signal",
               "vulnerability": "vulnerability signal"}


@dataclass(frozen=True)
class Priority:
    """A queue priority (0-100, higher first) and what put the ticket ahead, for the agent."""

    score: int
    because: tuple[str, ...]


def assess_priority(reasons: Sequence[str], metadata: dict[str, Any],
                    state: CustomerState | None = None) -> Priority:
    """People at risk or threatening action before routine uncertainty.

    `state` is the customer-state reading the classifier stage recorded; a reason that reports
    a signal (`customer state: ...`, the verifier's check) counts too. Without a reading, any
    reason naming a signal counts. Threats, fraud and vulnerability
    add 40, very negative sentiment 20, a premium tier 10.
    """
    because: list[str] = []
    kinds = state.kinds() if state else set()
    if state is not None:  # a reason counts only where it reports a signal, not a rule's prose
        reasons = [r for r in reasons if r.lower().startswith("customer state:")]
    text = " ".join(reasons).lower()
    for signal in state.signals if state else []:
        if signal.kind in URGENT_SIGNALS or signal.kind == "very_negative":
            because.append(signal_reason(signal).removeprefix("customer state: "))
    for needle, label in URGENT_TEXT.items():
        if needle in text and not any(b.startswith(label) for b in because):
            because.append(label)
    if "negative sentiment" in text and not any("negative sentiment" in b for b in because):
        because.append("very negative sentiment")
    urgent = bool(kinds & set(URGENT_SIGNALS)) or any(n in text for n in URGENT_TEXT)
    angry = "very_negative" in kinds or "negative sentiment" in text
    priority = 50 + (40 if urgent else 0) + (20 if angry else 0)
    if tier_of(metadata) in PREMIUM_TIERS:
        priority += 10
        because.append(f"{tier_of(metadata)} tier")
    return Priority(min(priority, 100), tuple(because))


def priority_for(reasons: Sequence[str], metadata: dict[str, Any],
                 state: CustomerState | None = None) -> int:
    return assess_priority(reasons, metadata, state).score


def tier_of(metadata: dict[str, Any]) -> str | None:
    tier = str(metadata.get("tier", "")).strip().lower()
    return tier or None


def sla_for(priority: int, tier: str | None) -> timedelta:
    """How long a ticket may wait for a person: urgent customer states first, premium tiers
    get half the time of the standard SLA."""
    if priority >= 90:
        sla = timedelta(hours=1)
    elif priority >= 70:
        sla = timedelta(hours=4)
    else:
        sla = timedelta(hours=24)
    return sla / 2 if tier in PREMIUM_TIERS else sla


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
        sla_due_at=row.sla_due_at,
        tier=row.tier,
        resolved_by=row.resolved_by,
        reply=row.reply,
        resolved_at=row.resolved_at,
        trace_id=row.trace_id,
    )


QUEUE_ORDER = (escalations.c.priority.desc(), escalations.c.sla_due_at, escalations.c.created_at)


def _claimable(now: datetime) -> Any:
    return or_(
        escalations.c.status == OPEN,
        and_(escalations.c.status == CLAIMED, escalations.c.lease_expires_at < now),
    )


def _scoped(query: Any, business_units: Sequence[str] | None) -> Any:
    if business_units is not None:
        query = query.where(escalations.c.business_unit.in_(list(business_units)))
    return query


SORTS: dict[str, tuple[Any, ...]] = {
    "priority": (*QUEUE_ORDER, escalations.c.ticket_id),
    "sla": (escalations.c.sla_due_at, escalations.c.priority.desc(), escalations.c.created_at,
            escalations.c.ticket_id),
    "newest": (escalations.c.created_at.desc(), escalations.c.ticket_id.desc()),
    "oldest": (escalations.c.created_at, escalations.c.ticket_id),
}
"""Queue orders by name: most urgent first (the claim order), SLA due soonest, newest, oldest.
Each ends on the ticket id, so pages neither repeat nor skip a ticket."""
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "active": (OPEN, CLAIMED), "open": (OPEN,), "claimed": (CLAIMED,),
    "resolved": (RESOLVED,), "returned": (RETURNED,), "all": (OPEN, CLAIMED, RESOLVED, RETURNED),
}


@dataclass(frozen=True)
class QueueQuery:
    """What an agent asks of the queue: search text, filters, order and page."""

    search: str | None = None
    status: str = "active"
    intent: str | None = None
    business_unit: str | None = None
    min_priority: int | None = None
    sort: str = "priority"
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise QueueError(f"unknown sort {self.sort!r}; one of {', '.join(SORTS)}")
        if self.status not in STATUS_FILTERS:
            raise QueueError(f"unknown status {self.status!r}; one of {', '.join(STATUS_FILTERS)}")
        if not 1 <= self.limit <= 500 or self.offset < 0:
            raise QueueError("a page holds 1-500 tickets and starts at offset 0 or later")


def _searched(query: Any, wanted: QueueQuery) -> Any:
    query = query.where(escalations.c.status.in_(STATUS_FILTERS[wanted.status]))
    ticket = escalations.c.context["envelope"]["ticket"]
    if wanted.search and wanted.search.strip():
        needle = "%" + wanted.search.strip().replace("\\", "\\\\").replace(
            "%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(
            escalations.c.ticket_id.ilike(needle),
            ticket["subject"].astext.ilike(needle),
            ticket["body"].astext.ilike(needle),
            ticket["customer_id"].astext.ilike(needle),
        ))
    if wanted.intent:
        query = query.where(
            escalations.c.context["envelope"]["classification"]["intent"].astext == wanted.intent)
    if wanted.business_unit:
        query = query.where(escalations.c.business_unit == wanted.business_unit)
    if wanted.min_priority is not None:
        query = query.where(escalations.c.priority >= wanted.min_priority)
    return query


async def list_queue(
    conn: AsyncConnection,
    *,
    business_units: Sequence[str] | None = None,
    include_resolved: bool = False,
    limit: int = 100,
    query: QueueQuery | None = None,
) -> list[QueueItem]:
    """One page of the queue; without `query`, the open and claimed tickets, most urgent first."""
    wanted = query or QueueQuery(status="all" if include_resolved else "active", limit=limit)
    statement = _searched(select(escalations), wanted).order_by(*SORTS[wanted.sort])
    statement = statement.limit(wanted.limit).offset(wanted.offset)
    rows = await conn.execute(_scoped(statement, business_units))
    return [_item(row) for row in rows]


async def count_queue(
    conn: AsyncConnection, query: QueueQuery, *, business_units: Sequence[str] | None = None
) -> int:
    """How many tickets match `query` across all pages."""
    statement = _searched(select(func.count()).select_from(escalations), query)
    return int((await conn.execute(_scoped(statement, business_units))).scalar_one())


async def get_item(
    conn: AsyncConnection, ticket_id: str, *, business_units: Sequence[str] | None = None
) -> QueueItem | None:
    """The ticket, or None when it is not queued (or not in one of `business_units`)."""
    query = select(escalations).where(escalations.c.ticket_id == ticket_id)
    row = (await conn.execute(_scoped(query, business_units))).first()
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
    candidate = _scoped(candidate, business_units).order_by(*QUEUE_ORDER).limit(1).with_for_update(
        skip_locked=True)
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


async def release(
    conn: AsyncConnection, ticket_id: str, agent: str, *,
    business_units: Sequence[str] | None = None,
) -> None:
    await _locked(conn, ticket_id, business_units)
    result = await conn.execute(
        update(escalations)
        .where(escalations.c.ticket_id == ticket_id, escalations.c.status == CLAIMED,
               escalations.c.claimed_by == agent)
        .values(status=OPEN, claimed_by=None, lease_expires_at=None)
    )
    if result.rowcount == 0:
        raise QueueError(f"{agent} does not hold a claim on {ticket_id}")
    await _account(conn, ticket_id, agent, "release", {})


class NotQueued(QueueError):
    """No such ticket in the queue, or not in the agent's business units (indistinguishable,
    so that an agent learns nothing about other units' tickets)."""


async def _locked(
    conn: AsyncConnection, ticket_id: str, business_units: Sequence[str] | None
) -> Any:
    query = select(escalations).where(escalations.c.ticket_id == ticket_id).with_for_update()
    row = (await conn.execute(_scoped(query, business_units))).first()
    if row is None:
        raise NotQueued(f"no escalated ticket {ticket_id}")
    return row


def _holds(row: Any, agent: str, now: datetime) -> bool:
    return bool(row.status == CLAIMED and row.claimed_by == agent and (
        row.lease_expires_at is None or row.lease_expires_at >= now))


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
    row = await _locked(conn, ticket_id, business_units)
    if row.status == RESOLVED:
        raise QueueError(f"{ticket_id} was already resolved by {row.resolved_by}")
    if row.status == CLAIMED and row.lease_expires_at is not None \
            and row.lease_expires_at >= now and row.claimed_by != agent:
        raise QueueError(f"{ticket_id} is claimed by {row.claimed_by}; only they can reassign it")
    target = await get_agent(conn, to_agent)
    if target is None:
        raise QueueError(f"no agent {to_agent}")
    if row.business_unit not in target.business_units:
        raise QueueError(f"{to_agent} does not serve business unit {row.business_unit}")
    if to_agent == agent and _holds(row, agent, now):
        raise QueueError(f"{ticket_id} is already yours")
    updated = (await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id)
        .values(status=CLAIMED, claimed_by=to_agent, lease_expires_at=now + lease)
        .returning(*escalations.c)
    )).one()
    await _account(conn, ticket_id, agent, "reassign", {
        "from": row.claimed_by if _holds(row, row.claimed_by, now) else None,
        "to": to_agent, "lease_expires_at": str(now + lease)})
    return _item(updated)


async def send_back(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    corrected_intent: str,
    *,
    business_units: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Correct the intent of a ticket the agent holds and send it back to automation.

    The correction is kept as a labelled example (`labelled_examples`: the customer's text, what
    the classifier said, what the agent says) for retraining the classifier. The ticket, with
    the corrected classification and the next automation attempt number, goes to the router
    through the outbox in this same transaction; every stage keys its records by the attempt,
    so the new attempt yields a new outcome (or escalates again and reopens this row).
    """
    import re

    intent = corrected_intent.strip()
    if not re.fullmatch(r"[a-z0-9_]{1,64}", intent):
        raise QueueError("the corrected intent must be 1-64 lowercase letters, digits or '_'")
    now = utcnow()
    row = await _locked(conn, ticket_id, business_units)
    if row.status == RESOLVED:
        raise QueueError(f"{ticket_id} was already resolved by {row.resolved_by}")
    if not _holds(row, agent, now):
        raise QueueError(f"{agent} must claim {ticket_id} before sending it back")
    context = dict(row.context)
    envelope = dict(context.get("envelope", {}))
    ticket = envelope.get("ticket", {})
    original = envelope.get("classification") or {}
    if original.get("intent") == intent and not original.get("out_of_scope") \
            and float(original.get("confidence") or 0) >= 0.99:
        raise QueueError(f"{ticket_id} is already classified as {intent} with certainty")
    count = (await conn.execute(
        select(func.count()).select_from(labelled_examples)
        .where(labelled_examples.c.ticket_id == ticket_id)
    )).scalar_one()
    example_key = f"agent:{int(count) + 1}"
    text = "\n".join(part for part in (ticket.get("subject"), ticket.get("body")) if part)
    await conn.execute(insert(labelled_examples).values(
        ticket_id=ticket_id, example_key=example_key, business_unit=row.business_unit,
        text=text, predicted_intent=original.get("intent"),
        predicted_confidence=original.get("confidence"),
        model_version=original.get("model_version"), corrected_intent=intent,
        labelled_by=agent,
    ))
    corrections = list(context.get("corrections", []))
    corrections.append({"by": agent, "at": now.isoformat(), "from": original.get("intent"),
                        "to": intent, "example_key": example_key})
    if original:
        envelope["classification"] = {**original, "intent": intent,
                                      "corrected_by": agent}
    context["envelope"] = envelope
    context["corrections"] = corrections
    attempt = int(row.attempt) + 1
    await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id)
        .values(status=RETURNED, claimed_by=None, lease_expires_at=None, context=context)
    )
    if original and ticket:
        await _send_to_automation(conn, envelope, ticket_id, agent, attempt)
    await _account(conn, ticket_id, agent, "send_back", {
        "from_intent": original.get("intent"), "to_intent": intent,
        "example_key": example_key})
    return {"ticket_id": ticket_id, "example_key": example_key,
            "from_intent": original.get("intent"), "to_intent": intent}


async def _send_to_automation(
    conn: AsyncConnection, envelope: dict[str, Any], ticket_id: str, agent: str, attempt: int
) -> None:
    """Hand the corrected ticket to the router via the outbox, in the caller's transaction."""
    import secrets

    corrected = TicketEnvelope.model_validate({
        **envelope,
        "classification": {
            **envelope["classification"],
            "confidence": 1.0,
            "out_of_scope": False,
            "model_version": f"agent:{agent}",
        },
        "route": None,
        "draft": None,
        "attempt": attempt,
    })
    headers = {"Pinworks-Stream": WORK_STREAM}
    if corrected.trace_id:
        headers["traceparent"] = f"00-{corrected.trace_id}-{secrets.token_hex(8)}-01"
    await conn.execute(insert(outbox).values(
        subject=CLASSIFIED,
        msg_id=f"{ticket_id}:classified:agent:{attempt}",
        payload=corrected.model_dump_json().encode(),
        headers=headers,
    ).on_conflict_do_nothing(index_elements=["msg_id"]))


async def resolve(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    reply: str,
    *,
    agent_cost: Decimal = Decimal(0),
    business_units: Sequence[str] | None = None,
    assist: dict[str, Any] | None = None,
) -> Outcome:
    """Resolve a ticket the agent holds; the human `resolved` outcome goes out via the outbox.

    `assist` says how the reply relates to the suggested replies (which one the agent started
    from, how similar the sent text is); it is kept with the `resolve` action for the
    per-intent usefulness report (`assist_usefulness`)."""
    if not reply.strip():
        raise QueueError("a resolution needs a reply to the customer")
    now = utcnow()
    row = await _locked(conn, ticket_id, business_units)
    if row.status == RESOLVED:
        raise QueueError(f"{ticket_id} was already resolved by {row.resolved_by}")
    if not _holds(row, agent, now):
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
    details: dict[str, Any] = {"reply_chars": len(reply), "intent": classification.get("intent")}
    if assist is not None:
        details["assist"] = assist
    await _account(conn, ticket_id, agent, "resolve", details)
    return stored


async def ticket_context(conn: AsyncConnection, ticket_id: str) -> dict[str, Any]:
    """Everything decided about a ticket so far, for the agent: each stage's decision with its
    reason and version, the cost lines and total, the outcomes sent, and who did what."""
    decision_rows = (await conn.execute(
        select(decisions).where(decisions.c.ticket_id == ticket_id).order_by(decisions.c.id)
    )).all()
    cost_rows = (await conn.execute(
        select(cost_ledger.c.component, cost_ledger.c.entry_key, cost_ledger.c.amount_usd,
               cost_ledger.c.created_at)
        .where(cost_ledger.c.ticket_id == ticket_id).order_by(cost_ledger.c.id)
    )).all()
    action_rows = (await conn.execute(
        select(accountability).where(accountability.c.ticket_id == ticket_id)
        .order_by(accountability.c.id)
    )).all()
    from pinworks_common.db.tables import outcomes as outcome_table

    outcome_rows = (await conn.execute(
        select(outcome_table.c.outcome_key, outcome_table.c.status, outcome_table.c.payload,
               outcome_table.c.created_at)
        .where(outcome_table.c.ticket_id == ticket_id).order_by(outcome_table.c.id)
    )).all()
    return {
        "decisions": [{
            "stage": r.stage, "decision_key": r.decision_key, "component": r.component,
            "version": r.version, "reason": r.reason, "inputs": r.inputs, "output": r.output,
            "cost_usd": float(r.cost_usd), "latency_ms": r.latency_ms,
            "created_at": _iso(r.created_at)} for r in decision_rows],
        "costs": [{"component": r.component, "entry_key": r.entry_key,
                   "amount_usd": float(r.amount_usd), "created_at": _iso(r.created_at)}
                  for r in cost_rows],
        "cost_usd": float(sum((Decimal(r.amount_usd) for r in cost_rows), Decimal(0))),
        "outcomes": [{"key": r.outcome_key, "status": r.status, "payload": r.payload,
                      "created_at": _iso(r.created_at)} for r in outcome_rows],
        "actions": [{"actor_type": r.actor_type, "actor": r.actor, "action": r.action,
                     "details": r.details, "at": _iso(r.created_at)} for r in action_rows],
    }


async def save_agent(
    conn: AsyncConnection, name: str, password_hash: str, business_units: Sequence[str]
) -> Agent:
    """Create an agent, or replace an existing agent's password and business units."""
    import re

    if not re.fullmatch(AGENT_NAME_PATTERN, name):
        raise QueueError("an agent name is 1-64 letters, digits or '._@-'")
    units = sorted({unit.strip() for unit in business_units if unit.strip()})
    if not units:
        raise QueueError("an agent needs at least one business unit")
    if any(len(unit) > 64 for unit in units):
        raise QueueError("a business unit is at most 64 characters")
    await conn.execute(
        insert(agents).values(name=name, password_hash=password_hash, business_units=units)
        .on_conflict_do_update(index_elements=["name"], set_={
            "password_hash": password_hash, "business_units": units, "updated_at": func.now()})
    )
    return Agent(name, password_hash, tuple(units))


async def get_agent(conn: AsyncConnection, name: str) -> Agent | None:
    row = (await conn.execute(select(agents).where(agents.c.name == name))).first()
    return Agent(row.name, row.password_hash, tuple(row.business_units)) if row else None


async def list_agents(
    conn: AsyncConnection, business_units: Sequence[str] | None = None
) -> list[Agent]:
    query = select(agents).order_by(agents.c.name)
    if business_units is not None:
        query = query.where(agents.c.business_units.overlap(list(business_units)))
    return [Agent(r.name, r.password_hash, tuple(r.business_units))
            for r in await conn.execute(query)]


async def pending_count(conn: AsyncConnection, business_units: Sequence[str] | None = None) -> int:
    query = select(func.count()).select_from(escalations).where(
        escalations.c.status.in_([OPEN, CLAIMED]))
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


async def customer_history(
    conn: AsyncConnection, customer_id: str, *, exclude: str | None = None,
    business_units: Sequence[str] | None = None, limit: int = 20,
) -> list[dict[str, Any]]:
    """The customer's other tickets (newest first) with their latest outcome, limited to the
    business units the agent serves."""
    from pinworks_common.db.tables import outcomes as outcome_table
    from pinworks_common.db.tables import tickets

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
        "received_at": _iso(r.received_at), "status": r.status or "in progress",
        "resolved_by": (r.payload or {}).get("resolved_by"),
        "answer": (r.payload or {}).get("answer"),
        "reasons": (r.payload or {}).get("reasons", []),
        "in_queue": r.queue_status is not None, "queue_status": r.queue_status,
    } for r in rows]


async def assist_usefulness(
    conn: AsyncConnection, business_units: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per intent: how many agent replies started from a suggestion, how similar what they sent
    was to it (1.0 = sent unchanged), and how many were sent unchanged."""
    rows = (await conn.execute(
        select(accountability.c.details, escalations.c.business_unit)
        .join(escalations, escalations.c.ticket_id == accountability.c.ticket_id)
        .where(accountability.c.action == "resolve", accountability.c.actor_type == "person")
        .where(escalations.c.business_unit.in_(list(business_units))
               if business_units is not None else sa_true())
    )).all()
    by_intent: dict[str, dict[str, Any]] = {}
    for row in rows:
        details = row.details or {}
        assist = details.get("assist")
        if assist is None:
            continue
        entry = by_intent.setdefault(details.get("intent") or "-", {
            "resolved": 0, "from_suggestion": 0, "similarities": [], "unchanged": 0,
            "closest": []})
        entry["resolved"] += 1
        if assist.get("closest_similarity") is not None:
            entry["closest"].append(float(assist["closest_similarity"]))
        if assist.get("used"):
            entry["from_suggestion"] += 1
            entry["similarities"].append(float(assist.get("similarity") or 0))
            entry["unchanged"] += int(bool(assist.get("unchanged")))
    report = []
    for intent, entry in sorted(by_intent.items()):
        similarities, closest = entry["similarities"], entry["closest"]
        report.append({
            "intent": intent, "intent_label": intent_label(intent),
            "resolved": entry["resolved"], "from_suggestion": entry["from_suggestion"],
            "mean_similarity": round(sum(similarities) / len(similarities), 3)
            if similarities else None,
            "unchanged": entry["unchanged"],
            "mean_closest_similarity": round(sum(closest) / len(closest), 3) if closest else None,
        })
    return report
