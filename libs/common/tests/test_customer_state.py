"""The shared customer-state reading and the known intents helper (the queue priority it
drives is tested with the escalation queue)."""

from __future__ import annotations

import pytest

from pinworks_common.customer_state import CustomerStateReader, state_reasons
from pinworks_contracts.intents import (
    UnknownIntent,
    intent_label,
    known_intents,
    nearest_intents,
    validate_intent,
)

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
