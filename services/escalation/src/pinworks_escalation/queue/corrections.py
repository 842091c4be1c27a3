"""Sending a ticket back to automation with the intent an agent corrected.

The correction is kept as a labelled example (`labelled_examples`: the customer's text, what
the classifier said, what the agent says) for retraining the classifier. The ticket, with the
corrected classification and the next automation attempt number, goes to the router through
the outbox in the same transaction; every stage keys its records by the attempt, so the new
attempt yields a new outcome (or escalates again and reopens the queue row). If the ticket had
an automatic answer with another intent, that answer is recorded as wrong for the live quality
estimate (`pinworks_common.quality`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import escalations, labelled_examples
from pinworks_common.personal_data import known_names, redact
from pinworks_common.quality.store import record_correction
from pinworks_contracts.messages import utcnow
from pinworks_escalation.queue.actions import account, check_held, locked
from pinworks_escalation.queue.handoff import automation_retry, to_outbox
from pinworks_escalation.queue.items import RETURNED, QueueError


def corrected_intent_name(corrected_intent: str) -> str:
    """The intent as stored: 1-64 lowercase letters, digits or '_', or refused."""
    intent = corrected_intent.strip()
    if not re.fullmatch(r"[a-z0-9_]{1,64}", intent):
        raise QueueError("the corrected intent must be 1-64 lowercase letters, digits or '_'",
                         "bad_intent")
    return intent


def corrected_context(
    context: dict[str, Any], agent: str, intent: str, example_key: str, now: datetime
) -> dict[str, Any]:
    """The queue row's context with the correction noted and the classification replaced."""
    context = dict(context)
    envelope = dict(context.get("envelope", {}))
    original = envelope.get("classification") or {}
    corrections = list(context.get("corrections", []))
    corrections.append({"by": agent, "at": now.isoformat(), "from": original.get("intent"),
                        "to": intent, "example_key": example_key})
    if original:
        envelope["classification"] = {**original, "intent": intent, "corrected_by": agent}
    context["envelope"] = envelope
    context["corrections"] = corrections
    return context


async def send_back(
    conn: AsyncConnection,
    ticket_id: str,
    agent: str,
    corrected_intent: str,
    *,
    business_units: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Correct the intent of a ticket the agent holds and send it back to automation."""
    intent = corrected_intent_name(corrected_intent)
    now = utcnow()
    row = await locked(conn, ticket_id, business_units)
    check_held(row, agent, now, "sending it back")
    envelope = row.context.get("envelope", {})
    original = envelope.get("classification") or {}
    if original.get("intent") == intent and not original.get("out_of_scope") \
            and float(original.get("confidence") or 0) >= 0.99:
        raise QueueError(f"{ticket_id} is already classified as {intent} with certainty",
                         "certain")
    example_key = await _record_example(conn, row, agent, intent)
    context = corrected_context(row.context, agent, intent, example_key, now)
    attempt = int(row.attempt) + 1
    await conn.execute(
        update(escalations).where(escalations.c.ticket_id == ticket_id)
        .values(status=RETURNED, claimed_by=None, lease_expires_at=None, context=context)
    )
    if original and envelope.get("ticket", {}):
        await to_outbox(conn, automation_retry(ticket_id, context["envelope"], agent, attempt))
    await account(conn, ticket_id, agent, "send_back", {
        "from_intent": original.get("intent"), "to_intent": intent,
        "example_key": example_key})
    # an automatic answer this ticket had with another intent was wrong: the live estimate counts it
    await record_correction(conn, ticket_id, agent, intent)
    return {"ticket_id": ticket_id, "example_key": example_key,
            "from_intent": original.get("intent"), "to_intent": intent}


async def _record_example(conn: AsyncConnection, row: Any, agent: str, intent: str) -> str:
    """Keep the customer's text with the classifier's and the agent's intent; its key."""
    envelope = row.context.get("envelope", {})
    ticket = envelope.get("ticket", {})
    original = envelope.get("classification") or {}
    count = (await conn.execute(
        select(func.count()).select_from(labelled_examples)
        .where(labelled_examples.c.ticket_id == row.ticket_id)
    )).scalar_one()
    example_key = f"agent:{int(count) + 1}"
    text = "\n".join(part for part in (ticket.get("subject"), ticket.get("body")) if part)
    # a training example keeps what the intent needs, not the customer's personal data
    text = redact(text, known_names=known_names(ticket.get("metadata")))[0]
    await conn.execute(insert(labelled_examples).values(
        ticket_id=row.ticket_id, example_key=example_key, business_unit=row.business_unit,
        text=text, predicted_intent=original.get("intent"),
        predicted_confidence=original.get("confidence"),
        model_version=original.get("model_version"), corrected_intent=intent,
        labelled_by=agent,
    ))
    return example_key
