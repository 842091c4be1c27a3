"""A queued ticket as agents see it, its statuses, and the errors the queue refuses with."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from pinworks_contracts.intents import intent_label
from pinworks_contracts.messages import utcnow

OPEN, CLAIMED, RESOLVED = "open", "claimed", "resolved"
RETURNED = "returned"
"""Sent back to automation with a corrected intent; a new escalation reopens it."""


class QueueError(ValueError):
    """An action the queue refuses, with the reason for the agent and a fixed `code` for it
    (the console's pages show the message of the code, never the text)."""

    def __init__(self, reason: str, code: str = "refused") -> None:
        super().__init__(reason)
        self.code = code


class NotQueued(QueueError):
    """No such ticket in the queue, or not in the agent's business units (indistinguishable,
    so that an agent learns nothing about other units' tickets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "gone")


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
            "claimed_by": self.holder(), "lease_expires_at": iso(self.lease_expires_at),
            "sla_due_at": iso(self.sla_due_at), "overdue": self.overdue(),
            "sla_status": self.sla_status(),
            "priority_because": list(self.context.get("priority_because", [])),
            "intent": classification.get("intent"),
            "intent_label": intent_label(classification.get("intent")),
            "customer_id": envelope.get("ticket", {}).get("customer_id"),
            "confidence": classification.get("confidence"),
            "subject": envelope.get("ticket", {}).get("subject"),
            "created_at": iso(self.created_at), "resolved_by": self.resolved_by,
            "resolved_at": iso(self.resolved_at), "trace_id": self.trace_id,
        }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item_from_row(row: Any) -> QueueItem:
    """The queue item of an `escalations` row (which has a column for every field)."""
    values = {field.name: getattr(row, field.name) for field in fields(QueueItem)}
    return QueueItem(**{**values, "reasons": list(row.reasons), "context": dict(row.context)})
