"""The shared customer-state reading, the queue priority it drives, SLA status and the known
intents helper."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pinworks_common.contracts import utcnow
from pinworks_common.customer_state import CustomerStateReader, state_reasons
from pinworks_common.intents import (
    UnknownIntent,
    intent_label,
    known_intents,
    nearest_intents,
    validate_intent,
)
from pinworks_common.queue import RESOLVED, QueueError, QueueItem, QueueQuery, assess_priority

READER = CustomerStateReader()


def kinds(text: str) -> list[str]:
    return [signal.kind for signal in READER.read(None, text).signals]


def test_the_four_states_are_recognised_and_routine_tickets_are_not() -> None:
    assert kinds("This is the third time I am writing. I will go to the ombudsman.") == [
        "legal_threat"]
    assert kinds("Someone else used my card, I didn't authorise these payments") == ["fraud"]
    assert kinds("My husband passed away and I need to close his account") == ["vulnerability"]
    assert "very_negative" in kinds(
        "This is disgusting, useless, pathetic service. I hate you, worst bank ever, awful!!!")
    assert kinds("My new card has not arrived yet, when will it come?") == []
    assert kinds("My transfer failed and the exchange rate was wrong") == [], (
        "banking topic words are not the customer's mood")


def test_reasons_read_as_the_verifier_always_wrote_them() -> None:
    state = READER.read("Complaint", "I will contact my lawyer")
    assert state_reasons(state) == ["customer state: legal threat ('lawyer')"]
    assert state.version.startswith("customer-state-3")


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


def test_known_intents_and_the_nearest_on_a_typo() -> None:
    intents = known_intents()
    assert len(intents) == 77 and "card_arrival" in intents and "oos" not in intents
    assert validate_intent("card_arrival") == "card_arrival"
    assert validate_intent("Card arrival") == "card_arrival"
    assert validate_intent("refund_not_showing_up") == "Refund_not_showing_up"
    assert nearest_intents("cardd_arival")[0] == "card_arrival"
    with pytest.raises(UnknownIntent, match="did you mean card_arrival") as raised:
        validate_intent("cardd_arival")
    assert raised.value.suggestions[0] == "card_arrival"
    with pytest.raises(UnknownIntent) as nothing:
        validate_intent("hotel booking in lisbon")
    assert nothing.value.suggestions == []
    assert intent_label("card_arrival") == "Card arrival"
    assert intent_label("Refund_not_showing_up") == "Refund not showing up"
    assert intent_label("reverted_card_payment?") == "Reverted card payment?"
    assert intent_label(None) == "-"
