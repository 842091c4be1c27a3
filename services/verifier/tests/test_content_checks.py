from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pinworks_contracts.messages import (
    Classification,
    Draft,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_verifier.grounding import GroundednessCheck
from pinworks_verifier.pii import PiiCheck, find_pii, iban_valid, luhn_valid
from pinworks_verifier.policy import PolicyCheck

PASSAGES = [
    {"passage_id": "card-not-arrived#1", "text": (
        "Cards sent by standard delivery usually arrive 3-5 working days after dispatch in the "
        "UK. Please allow up to 10 working days for UK addresses and up to 15 working days for "
        "addresses in the EEA before reporting a card as missing.")},
    {"passage_id": "card-not-arrived#4", "text": (
        "If the card still hasn't arrived after 10 working days, message us through Help > Chat "
        "with us. We'll cancel the missing card so no one else can use it, and send you a free "
        "replacement.")},
]
KB_ANSWER = (
    "Hi Sam,\n\nThanks for getting in touch.\n\nCards sent by standard delivery usually arrive "
    "3-5 working days after dispatch in the UK. If the card still hasn't arrived after 10 "
    "working days, message us through Help > Chat with us and we will send you a free "
    "replacement.\n\nBest wishes,\nLarkspur Bank Support"
)


def envelope(answer: str = KB_ANSWER, *, body: str = "Where is my card?", handler: str = "kb",
             citations: tuple[str, ...] = ("card-not-arrived#1", "card-not-arrived#4"),
             details: dict[str, Any] | None = None) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T", business_unit="retail", body=body),
        trace_id="0" * 32,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=Classification(
            intent="card_arrival", confidence=0.9, out_of_scope=False, model_version="m",
            alternatives=[IntentScore(intent="card_arrival", score=0.9)]),
        draft=Draft(handler=handler, handler_version="v", answer=answer, cost_usd=Decimal(0),
                    citations=list(citations),
                    details={"passages": PASSAGES} if details is None else details),
    )


# ----------------------------------------------------------------------- groundedness

def test_a_draft_made_of_its_cited_passages_is_grounded() -> None:
    result = GroundednessCheck().run(envelope())
    assert result.passed, result.reasons
    assert result.details["sentences_checked"] == 2


def test_an_unsupported_sentence_is_named() -> None:
    invented = "Premium customers can collect a new card from any branch the same day."
    answer = KB_ANSWER.replace("Best wishes", f"{invented}\n\nBest wishes")
    result = GroundednessCheck().run(envelope(answer))
    assert not result.passed
    assert result.reasons == (f"groundedness: unsupported by the cited passages: {invented!r}",)


def test_a_changed_figure_is_unsupported() -> None:
    result = GroundednessCheck().run(envelope(KB_ANSWER.replace("3-5 working", "1-2 working")))
    assert not result.passed
    assert "its figures are not in them" in result.reasons[0]
    assert "1-2 working days" in result.reasons[0]


def test_citations_must_come_with_their_text() -> None:
    result = GroundednessCheck().run(envelope(details={"passages": PASSAGES[:1]}))
    assert not result.passed
    assert any("card-not-arrived#4" in r for r in result.reasons)
    assert not GroundednessCheck().run(envelope(citations=())).passed


def test_template_and_llm_variants() -> None:
    # reviewed templates are not checked; llm handlers (llm, llm_small, ...) are
    assert GroundednessCheck().run(envelope("Anything at all.", handler="template")).passed
    assert not GroundednessCheck().run(envelope("Your card is made of gold and silver.",
                                                handler="llm_small")).passed


# ----------------------------------------------------------------------- PII

def test_validators() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB83 WEST 1234 5698 7654 32")


@pytest.mark.parametrize(("leak", "kind"), [
    ("4111 1111 1111 1111", "card number"),
    ("GB82 WEST 1234 5698 7654 32", "IBAN"),
    ("jane.doe@example.com", "email address"),
    ("07700 900123", "phone number"),
    ("account number 31926819", "account number"),
])
def test_pii_the_customer_did_not_write_fails(leak: str, kind: str) -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.", f"Your details: {leak}.")
    result = PiiCheck().run(envelope(answer))
    assert not result.passed
    assert result.details["kinds"] == [kind]
    # the same detail written by the customer may be repeated
    assert PiiCheck().run(envelope(answer, body=f"Where is my card? My details: {leak}")).passed


@pytest.mark.parametrize(("leak", "body"), [
    # every digit of the leaked number is somewhere in the customer's digits, never as one token
    ("account number 12345678", "Card ending 1234, order 5678 9012 3456 - where is it?"),
    ("account number 31926819", "I paid 319 on the 26th and 819 last week."),
    ("07700 900123", "My old number ended 0770, the new card ref is 0900123."),
])
def test_pii_digits_scattered_through_the_ticket_are_not_a_number_the_customer_gave(
        leak: str, body: str) -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.", f"Your details: {leak}.")
    result = PiiCheck().run(envelope(answer, body=body))
    assert not result.passed, "a number made of scattered digits passed"


@pytest.mark.parametrize(("leak", "body"), [
    ("account number 12345678", "Is there a problem with account 12345678?"),
    ("07700 900123", "Call me back on +44 7700 900123 please."),
    ("account number 1234567890", "My reference is 1234567890."),
    ("sort code 20-00-00", "Pay it to 20-00-00 43218765 please."),
])
def test_pii_a_number_the_customer_gave_as_a_whole_token_passes(leak: str, body: str) -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.", f"Your details: {leak}.")
    assert PiiCheck().run(envelope(answer, body=body)).passed


def test_pii_a_number_in_the_cited_passages_passes() -> None:
    passages = [*PASSAGES, {"passage_id": "contact#1", "text": "Lost cards: call 0800 123 4567."}]
    answer = KB_ANSWER.replace("Thanks for getting in touch.", "You can call 0800 123 4567.")
    assert PiiCheck().run(envelope(answer, details={"passages": passages})).passed
    assert not PiiCheck().run(envelope(answer)).passed


def test_lookalikes_and_published_contacts_pass() -> None:
    answer = KB_ANSWER.replace(
        "Thanks for getting in touch.",
        "Call us on +44 20 7946 0321. Reference 4111 1111 1111 1112, IBAN GB83 WEST 1234 5698 "
        "7654 32, £1,000 on 2026-11-23.")
    result = PiiCheck().run(envelope(answer))
    assert result.passed, result.reasons
    assert find_pii("4111-1111-1111-1111") == [("card number", "4111111111111111")]


# ----------------------------------------------------------------------- policy

@pytest.mark.parametrize(("promise", "kind"), [
    ("We guarantee you will get a full refund.", "guaranteed refund"),
    ("We will refund you in full today.", "guaranteed refund"),
    ("As a goodwill gesture we have waived the fee.", "fee waiver"),
    ("We'll also refund the fee you were charged.", "fee waiver"),
    ("We will pay you £50 compensation.", "compensation"),
    ("We guarantee this will be fixed by tomorrow.", "guaranteed outcome"),
])
def test_forbidden_promises_fail_unless_entitled(promise: str, kind: str) -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.", promise)
    result = PolicyCheck().run(envelope(answer))
    assert not result.passed
    assert result.reasons[0].startswith(f"policy: {kind} promised without entitlement")
    declared = PolicyCheck().run(envelope(answer, details={
        "passages": PASSAGES, "entitlements": [kind.replace(" ", "_")]}))
    assert declared.passed, declared.reasons
    configured = PolicyCheck({"kb": [kind.replace(" ", "_")]}).run(envelope(answer))
    assert configured.passed


def test_negated_and_factual_statements_are_not_promises() -> None:
    answer = KB_ANSWER.replace(
        "Thanks for getting in touch.",
        "We'll do everything we can, but recovery isn't guaranteed. UK Direct Debits are "
        "protected by the Direct Debit Guarantee. We can't promise a refund. Any transfer fee "
        "is refunded too.")
    result = PolicyCheck().run(envelope(answer))
    assert result.passed, result.reasons
