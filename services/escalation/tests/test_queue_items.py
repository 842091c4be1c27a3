"""The queue priority a customer-state reading drives, SLA status, and the queue's query."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pinworks_common.customer_state import CustomerStateReader
from pinworks_contracts.messages import utcnow
from pinworks_escalation.queue import RESOLVED, QueueError, QueueItem, QueueQuery, assess_priority

READER = CustomerStateReader()


def test_threats_fraud_vulnerability_and_anger_put_a_ticket_ahead_with_the_reason() -> None:
    routine = assess_priority(["routed to a person by rule unsure-to-person"], {})
    threat = assess_priority(["routed to a person"], {},
                             READER.read(None, "I will go to the ombudsman"))
    angry = assess_priority(["x"], {}, READER.read(
        None, "Disgusting, useless, pathetic service. I hate you, awful, worst ever!!!"))
    premium = assess_priority(["x"], {"tier": "Premium"})
    assert (routine.score, routine.because) == (50, ())
    assert threat.score == 90 and threat.because == ("legal threat ('ombudsman')",)
    assert angry.score == 70 and angry.because[0].startswith("very negative sentiment")
    assert premium.score == 60 and premium.because == ("premium tier",)
    assert threat.score > angry.score > premium.score > routine.score


def item(status: str, due_in: timedelta, resolved_after: timedelta | None = None) -> QueueItem:
    now = utcnow()
    return QueueItem(
        ticket_id="T", business_unit="u", status=status, priority=50, source_stage="router",
        reasons=["r"], claimed_by=None, lease_expires_at=None, created_at=now, context={},
        sla_due_at=now + due_in,
        resolved_at=now + resolved_after if resolved_after is not None else None)


def test_sla_status_is_met_due_or_breached() -> None:
    assert item("open", timedelta(hours=3)).sla_status() == "due"
    assert item("open", -timedelta(minutes=1)).sla_status() == "breached"
    assert item(RESOLVED, timedelta(hours=3), timedelta(0)).sla_status() == "met"
    assert item(RESOLVED, timedelta(hours=1), timedelta(hours=2)).sla_status() == "breached"


def test_queue_query_refuses_what_it_cannot_do() -> None:
    with pytest.raises(QueueError, match="unknown sort"):
        QueueQuery(sort="random")
    with pytest.raises(QueueError, match="unknown status"):
        QueueQuery(status="lost")
    with pytest.raises(QueueError, match="1-500"):
        QueueQuery(limit=0)
