"""How urgent a queued ticket is (priority 0-100 and why) and how long it may wait (its SLA).

Plain functions of the ticket's reasons, metadata and customer-state reading: the escalation
stage applies them when it queues a ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pinworks_common.customer_state import signal_reason
from pinworks_contracts.messages import CustomerState, EscalationRequest
from pinworks_escalation.queue.items import OPEN

PREMIUM_TIERS = frozenset({"premium", "vip", "business"})
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


def queue_row(request: EscalationRequest, state: CustomerState, now: datetime
              ) -> dict[str, Any]:
    """The queue row of an escalated ticket: open, with its priority, SLA and context."""
    ticket = request.envelope.ticket
    assessed = assess_priority(request.reasons, ticket.metadata, state)
    tier = tier_of(ticket.metadata)
    return {
        "ticket_id": ticket.ticket_id,
        "business_unit": ticket.business_unit,
        "status": OPEN,
        "priority": assessed.score,
        "source_stage": request.source_stage,
        "reasons": request.reasons,
        "context": {"envelope": request.envelope.model_dump(mode="json"),
                    "customer_state": state.model_dump(mode="json"),
                    "priority_because": list(assessed.because)},
        "trace_id": request.envelope.trace_id,
        "tier": tier,
        "sla_due_at": now + sla_for(assessed.score, tier),
        "attempt": request.envelope.attempt,
    }
