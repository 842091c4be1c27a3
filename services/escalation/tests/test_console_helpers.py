"""Console helpers and the queue's SLA rules, without I/O."""

from __future__ import annotations

from datetime import timedelta

from pinworks_contracts.messages import utcnow
from pinworks_escalation.console.formatting import safe_next, when
from pinworks_escalation.queue import priority_for, sla_for, tier_of


def test_sign_in_only_returns_to_paths_on_this_site() -> None:
    assert safe_next("/tickets/T-1") == "/tickets/T-1"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        assert safe_next(hostile) == "/"


def test_times_read_relative_to_now() -> None:
    assert "(in 1h" in when(utcnow() + timedelta(hours=1, minutes=1))
    assert "ago)" in when(utcnow() - timedelta(minutes=5))
    assert when(None) == "-"


def test_urgent_and_premium_tickets_are_due_sooner() -> None:
    routine = priority_for(["routed to a person by rule unsure-to-person"], {})
    legal = priority_for(["customer state: legal threat ('lawyer')"], {})
    assert sla_for(routine, None) == timedelta(hours=24)
    assert sla_for(routine, "premium") == timedelta(hours=12)
    assert sla_for(legal, None) == timedelta(hours=1)
    assert tier_of({"tier": " VIP "}) == "vip" and tier_of({}) is None
