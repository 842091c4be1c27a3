"""Names and addresses of anyone but the customer."""

from __future__ import annotations

from datetime import UTC, datetime

from pinworks_contracts.messages import TicketEnvelope, TicketSubmission
from pinworks_verifier.people import PeopleCheck

from .test_content_checks import KB_ANSWER, envelope


def with_metadata(answer: str, body: str, metadata: dict[str, str]) -> TicketEnvelope:
    base = envelope(answer, body=body)
    ticket = TicketSubmission(ticket_id="T", business_unit="retail", body=body, metadata=metadata)
    return base.model_copy(update={"ticket": ticket, "received_at": datetime(2026, 1, 1, tzinfo=UTC)})


def test_a_leaked_name_and_town_fail() -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.",
                               "Jane Doe of Leeds had the same problem last week.")
    result = PeopleCheck().run(envelope(answer))
    assert not result.passed
    assert result.details["kinds"] == ["address", "name"]


def test_a_leaked_postal_address_fails() -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.",
                               "Your card went to 14 Park Road, Leeds LS1 4AB.")
    assert not PeopleCheck().run(envelope(answer)).passed


def test_the_customers_own_name_and_address_pass() -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.",
                               "We sent it to 14 Park Road, Leeds LS1 4AB.")
    body = "I'm at 14 Park Road, Leeds LS1 4AB and my card never came."
    result = PeopleCheck().run(with_metadata(answer, body, {"customer_name": "Sam Taylor"}))
    assert result.passed, result.reasons


def test_a_correct_draft_with_the_bank_sign_off_passes() -> None:
    result = PeopleCheck().run(with_metadata(KB_ANSWER, "Where is my card?",
                                             {"customer_name": "Sam"}))
    assert result.passed, result.reasons
    assert not PeopleCheck().run(envelope()).passed, "a greeting to a name the ticket never gave"
