from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pinworks_common.contracts import (
    Classification,
    Draft,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_verifier.checks import CompletenessCheck, CustomerStateCheck, failing_reasons, verify

GOOD_ANSWER = (
    "Hi Sam, new cards usually arrive within 5 working days. You can track your card in the "
    "app under Cards, and if it has not arrived after 10 days we will send a replacement."
)


def envelope(body: str = "Where is my new card?", answer: str = GOOD_ANSWER,
             terms: tuple[str, ...] = ("card", "working days")) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T", business_unit="retail", body=body),
        trace_id="0" * 32,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=Classification(
            intent="card_arrival", confidence=0.9, out_of_scope=False, model_version="m",
            alternatives=[IntentScore(intent="card_arrival", score=0.9)]),
        draft=Draft(handler="template", handler_version="t1", answer=answer,
                    cost_usd=Decimal("0.0005"), required_terms=list(terms)),
    )


def test_a_good_draft_for_a_calm_customer_passes() -> None:
    results = verify([CompletenessCheck(), CustomerStateCheck()], envelope())
    assert failing_reasons(results) == []


@pytest.mark.parametrize(
    ("answer", "terms", "reason"),
    [
        ("", (), "the draft is empty"),
        ("Thanks.", (), "the draft is only 7 characters"),
        (GOOD_ANSWER.replace("Sam", "{customer_name}"), (), "unfilled placeholder '{customer_name}'"),
        (GOOD_ANSWER[:-1] + " and then we", (), "looks truncated"),
        (GOOD_ANSWER, ("exchange rate", "currency"), "mentions none of the terms"),
    ],
)
def test_incomplete_drafts_fail_with_the_reason(answer: str, terms: tuple[str, ...], reason: str
                                                ) -> None:
    result = CompletenessCheck().run(envelope(answer=answer, terms=terms))
    assert not result.passed
    assert any(reason in text for text in result.reasons), result.reasons


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("This is the worst, most useless bank. I hate you, terrible awful service!!",
         "very negative sentiment"),
        ("My card hasn't arrived. I will contact my lawyer.", "legal threat"),
        ("Someone else is using my account, this is fraud", "fraud signal"),
        ("My husband passed away and I need access to our account", "vulnerability signal"),
    ],
)
def test_customers_in_a_difficult_state_go_to_a_person(body: str, reason: str) -> None:
    result = CustomerStateCheck().run(envelope(body=body))
    assert not result.passed
    assert any(reason in text for text in result.reasons), result.reasons


def test_a_sign_off_after_the_last_sentence_is_not_truncation() -> None:
    signed = GOOD_ANSWER + "\n\nBest wishes,\nLarkspur Bank Support"
    assert CompletenessCheck().run(envelope(answer=signed)).passed
    cut = GOOD_ANSWER[:-1] + " and then\n\nBest wishes,\nLarkspur Bank Support"
    assert not CompletenessCheck().run(envelope(answer=cut)).passed


def test_mild_frustration_is_not_escalated() -> None:
    assert CustomerStateCheck().run(envelope(body="I am still waiting on my card, any news?")).passed
