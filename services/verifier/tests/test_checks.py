from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pinworks_common.customer_state import CustomerStateReader
from pinworks_contracts.messages import (
    Classification,
    Draft,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_verifier.checks import (
    CompletenessCheck,
    CustomerStateCheck,
    DisagreementCheck,
    failing_reasons,
    verify,
)
from pinworks_verifier.intent_scorer import NaiveBayesIntentScorer

GOOD_ANSWER = (
    "Hi Sam, new cards usually arrive within 5 working days. You can track your card in the "
    "app under Cards, and if it has not arrived after 10 days we will send a replacement."
)


def envelope(body: str = "Where is my new card?", answer: str = GOOD_ANSWER,
             terms: tuple[str, ...] = ("card", "working days"), *, intent: str = "card_arrival",
             handler: str = "template", details: dict[str, Any] | None = None
             ) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T", business_unit="retail", body=body),
        trace_id="0" * 32,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=Classification(
            intent=intent, confidence=0.9, out_of_scope=False, model_version="m",
            alternatives=[IntentScore(intent=intent, score=0.9)]),
        draft=Draft(handler=handler, handler_version="t1", answer=answer,
                    cost_usd=Decimal("0.0005"), required_terms=list(terms),
                    details=details or {}),
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


def test_the_recorded_reading_is_used_when_this_reader_made_it() -> None:
    angry = "I will take this to the ombudsman"
    check = CustomerStateCheck()
    read = check.run(envelope(body=angry))
    recorded = CustomerStateReader().read(None, angry)
    given = envelope(body=angry).model_copy(update={"customer_state": recorded})
    assert check.run(given) == read
    # A reading this reader made is taken as it is (here one that found nothing) ...
    calm = recorded.model_copy(update={"signals": [], "sentiment": 0.5})
    assert check.run(envelope(body=angry).model_copy(update={"customer_state": calm})).passed
    # ... one from another reader (another threshold, an older version) is read again.
    for version in (CustomerStateReader(-0.5).version, "customer-state-2"):
        other = calm.model_copy(update={"version": version})
        assert check.run(envelope(body=angry).model_copy(update={"customer_state": other})
                         ) == read


def test_mild_frustration_is_not_escalated() -> None:
    assert CustomerStateCheck().run(envelope(body="I am still waiting on my card, any news?")).passed


@pytest.fixture(scope="module")
def relevance() -> CompletenessCheck:
    return CompletenessCheck(NaiveBayesIntentScorer.load("ticket_intent"),
                             NaiveBayesIntentScorer.load("answer_intent"))


CARD_ARRIVAL_DRAFT = (
    "Hi Sam,\n\nI'm sorry your card hasn't arrived yet.\n\nStandard delivery usually takes 3-5 "
    "working days after dispatch within the UK, but please allow up to 10 working days. Please "
    "check that the delivery address under Profile > Personal details is correct.\n\nIf it "
    "still hasn't arrived after that, message us and we'll send a free replacement.\n\n"
    "Best wishes,\nLarkspur Bank Support"
)
EXCHANGE_DRAFT = (
    "Hi Sam,\n\nWhen you pay by card or withdraw cash in a currency you don't hold, we convert "
    "the amount at the Mastercard exchange rate. The rate is set on the day the merchant or ATM "
    "operator completes the transaction. At weekends we add a markup of 0.5% for major "
    "currencies and 1% for less common ones, because markets are closed.\n\n"
    "Best wishes,\nLarkspur Bank Support"
)


def test_a_draft_for_the_intent_the_ticket_asks_about_passes(relevance: CompletenessCheck) -> None:
    result = relevance.run(envelope("I ordered a card two weeks ago and it still hasn't come",
                                    CARD_ARRIVAL_DRAFT, ("working days",)))
    assert result.passed, result.reasons
    assert result.details["ticket_margin"] == 0.0


def test_a_template_for_the_wrong_intent_is_caught(relevance: CompletenessCheck) -> None:
    # the classifier misread the ticket and the template followed it
    result = relevance.run(envelope("What exchange rate will I get if I pay in euros?",
                                    CARD_ARRIVAL_DRAFT, ("working days",)))
    assert not result.passed
    assert any("the ticket does not read as card_arrival" in r and "exchange" in r
               for r in result.reasons), result.reasons


def test_a_draft_about_something_else_is_caught(relevance: CompletenessCheck) -> None:
    # right classification, but the specialist answered another question
    result = relevance.run(envelope("My card still hasn't arrived after two weeks",
                                    EXCHANGE_DRAFT, ()))
    assert not result.passed
    assert any("the draft does not answer card_arrival" in r for r in result.reasons), \
        result.reasons


def test_disagreement_between_specialist_and_classifier() -> None:
    check = DisagreementCheck()
    assert check.run(envelope()).passed  # templates give no reading of their own
    agree = envelope(handler="kb", details={"specialist_intent": "card_arrival"})
    assert check.run(agree).passed
    several = envelope(handler="kb", details={"specialist_intent": ["card_delivery_estimate",
                                                                     "card_arrival"]})
    assert check.run(several).passed
    result = check.run(envelope(handler="llm", details={"specialist_intent": "exchange_rate"}))
    assert not result.passed
    assert result.reasons == ("disagreement: the llm specialist read the ticket as "
                              "exchange_rate, the classifier as card_arrival",)


def test_banking_words_alone_are_not_a_bad_mood() -> None:
    calm = "My transfer failed and the exchange rate looks wrong, can you check the error?"
    assert CustomerStateCheck().run(envelope(body=calm)).passed


def test_an_intent_model_trains_saves_and_loads(tmp_path: Path) -> None:
    examples = [("where is my new card", "card_arrival"), ("my card has not come yet", "card_arrival"),
                ("what exchange rate do you use", "exchange_rate"),
                ("the exchange rate for euros", "exchange_rate")]
    model = NaiveBayesIntentScorer.train(examples, ["card_arrival", "exchange_rate"], min_df=1,
                              meta={"calibration": {"margin_threshold": -1.0}})
    model.save(tmp_path, "tiny")
    loaded = NaiveBayesIntentScorer.load("tiny", tmp_path)
    assert loaded.version.startswith("tiny-")
    for text in ("has my card come", "which exchange rate"):
        assert loaded.score(text).best(1) == model.score(text).best(1)
    assert loaded.score("has my card come").best(1)[0][0] == "card_arrival"
    assert loaded.score("which exchange rate").margin("card_arrival") < 0
    assert CompletenessCheck(loaded).ticket_margin == -1.0


@pytest.mark.parametrize("text", [
    "".join(chr(c) for c in range(128)), "My CARD Hasn't Arrived; it's been 10 DAYS!",
    "Caf\u00e9 na\u00efve \u2019quoted\u2018 \uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48", ""])
def test_ascii_text_skips_decomposition_with_the_same_result(text: str) -> None:
    """ASCII text is read as it is, lower-cased; any other text as before: decomposed, accents
    dropped, curly quotes straightened."""
    import unicodedata

    from pinworks_verifier.intent_scorer import normalize

    decomposed = "".join(c for c in unicodedata.normalize("NFKD", text)
                         if not unicodedata.combining(c))
    assert normalize(text) == decomposed.replace("\u2019", "'").replace("\u2018", "'").lower()


def test_a_tickets_pii_is_found_once_for_both_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pii check reads the customer's own personal data once, for what they wrote and for
    the numbers a draft may repeat; the verdict is the one reading it twice gave."""
    from pinworks_verifier import pii

    body = "Call me on 07700 900123 or mail sam@example.com, card 4539 1488 0343 6467"
    answer = ("Hi Sam,\n\nWe will call you on 07700 900123 about card 4539 1488 0343 6467 "
              "and about 020 7946 0999.\n\nBest wishes,\nLarkspur Bank")
    ticket = envelope(body=body, answer=answer)
    expected = pii.PiiCheck().run(ticket)
    assert expected.reasons == ("pii: the draft contains a phone number the customer did not "
                                "write (ending 0999)",)
    read: list[str] = []
    real = pii.find_pii

    def counted(text: str) -> list[tuple[str, str]]:
        read.append(text)
        return real(text)

    monkeypatch.setattr(pii, "find_pii", counted)
    assert pii.PiiCheck().run(ticket) == expected
    assert sum(body in text for text in read) == 1
