"""Every text/customer condition matches what it should, refuses what it should not, and says why."""

from __future__ import annotations

from typing import Any

import pytest

from pinworks_contracts.messages import Classification, IntentScore, TicketSubmission
from pinworks_router.domain import mismatch, route
from pinworks_router.features import TicketFeatures, sentiment_of, urgency_cues, urgency_level
from pinworks_router.policy import Conditions, PolicyError, parse_policy


def ticket(body: str = "Where is my card?", subject: str | None = None,
           **metadata: Any) -> TicketSubmission:
    return TicketSubmission(ticket_id="T", business_unit="retail", body=body, subject=subject,
                            metadata=metadata)


CLS = Classification(intent="card_arrival", confidence=0.9, out_of_scope=False,
                     alternatives=[IntentScore(intent="card_arrival", score=0.9)],
                     model_version="m1")


def why(conditions: dict[str, Any], t: TicketSubmission) -> str | None:
    policy = parse_policy("rules:\n  - name: r\n    handler: kb\n")
    return mismatch(Conditions.model_validate(conditions), policy, t, CLS, TicketFeatures(t))


def test_metadata_tier() -> None:
    cond = {"metadata": {"tier": ["premium", "vip"]}}
    assert why(cond, ticket(tier="vip")) is None
    assert why(cond, ticket(tier="VIP ")) is None
    assert why(cond, ticket(tier="basic")) == "metadata tier='basic' not in ['premium', 'vip']"
    assert why(cond, ticket()) == "metadata has no 'tier' (rule needs one of ['premium', 'vip'])"


def test_metadata_scalar_numbers_and_booleans() -> None:
    assert why({"metadata": {"tier": "gold"}}, ticket(tier="gold")) is None
    assert why({"metadata": {"segment": [3]}}, ticket(segment=3)) is None
    assert why({"metadata": {"segment": [3]}}, ticket(segment="3")) is None
    assert why({"metadata": {"vip": True}}, ticket(vip=True)) is None
    assert why({"metadata": {"vip": True}}, ticket(vip=False)) is not None
    two = {"metadata": {"tier": ["vip"], "region": ["eu"]}}
    assert why(two, ticket(tier="vip", region="eu")) is None
    assert why(two, ticket(tier="vip", region="us")) == "metadata region='us' not in ['eu']"


def test_keywords_are_whole_words_case_insensitive_in_subject_or_body() -> None:
    cond = {"keywords": ["refund", "charge back"]}
    assert why(cond, ticket("I want a REFUND now")) is None
    assert why(cond, ticket("body", subject="Charge back request")) is None
    assert why(cond, ticket("refunds are slow")) == (
        "none of the keywords ['refund', 'charge back'] in the text")
    assert why(cond, ticket("chargeback please")) is not None


def test_patterns_search_the_text() -> None:
    cond = {"patterns": [r"\b\d{4}-\d{4}\b", r"^urgent:"]}
    assert why(cond, ticket("my card 1234-5678 is blocked")) is None
    assert why(cond, ticket("URGENT: help")) is None
    assert why(cond, ticket("help me")) == (
        r"none of the patterns ['\\b\\d{4}-\\d{4}\\b', '^urgent:'] matches the text")


def test_sentiment_bounds_use_vader() -> None:
    angry = ticket("This is absolutely terrible, I am furious and disgusted with your awful bank")
    happy = ticket("Thank you so much, your service is wonderful and I love the new app")
    assert sentiment_of(angry.body) < -0.5 < 0.5 < sentiment_of(happy.body)
    cond = {"max_sentiment": -0.5}
    assert why(cond, angry) is None
    reason = why(cond, happy)
    assert reason is not None and reason.startswith("sentiment ") and "above -0.5" in reason
    assert why({"min_sentiment": 0.5}, happy) is None
    assert why({"min_sentiment": 0.5}, angry) is not None


def test_urgency_lexicon_levels() -> None:
    assert urgency_level(urgency_cues("where is my card")) == "low"
    assert urgency_cues("please reply ASAP") == ["asap"]
    assert urgency_level(urgency_cues("please reply ASAP")) == "medium"
    high = "URGENT: I am stuck abroad, locked out, need it right now!!!"
    assert urgency_level(urgency_cues(high)) == "high"
    assert why({"urgency": ["high"]}, ticket(high)) is None
    assert why({"urgency": ["high"]}, ticket("reply asap")) == "urgency medium not in ['high']"
    assert why({"urgency": ["low", "medium"]}, ticket("hello")) is None


def test_route_records_the_features_it_read() -> None:
    policy = parse_policy("""\
rules:
  - name: angry-vip
    when: {metadata: {tier: [vip]}, max_sentiment: -0.3}
    handler: llm_frontier
    fallbacks: [human]
  - name: urgent
    when: {urgency: [high]}
    handler: human
  - name: rest
    handler: template
""")
    calm = route(policy, ticket("hello, where is my card?", tier="basic"), CLS)
    assert calm.decision.rule == "rest"
    # the tier failed first, so sentiment was never computed; urgency was
    assert calm.features == {"urgency": "low", "urgency_cues": []}
    angry = route(policy, ticket("This is terrible, I hate this awful bank", tier="vip"), CLS)
    assert angry.decision.rule == "angry-vip"
    assert angry.decision.fallbacks == ["human"]
    assert isinstance(angry.features["sentiment"], float) and angry.features["sentiment"] < -0.3


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{patterns: ['ok', '(unclosed']}", "line 4: rule 'a': when.patterns.1: Value error, "
         "invalid regular expression '(unclosed'"),
        ("\n      patterns:\n        - fine\n        - '[z-a]'",
         "line 7: rule 'a': when.patterns.1: Value error, invalid regular expression '[z-a]'"),
        ("{keywords: []}", "line 4: rule 'a': when.keywords: Value error, must not be empty"),
        ("{keywords: ['  ']}", "line 4: rule 'a': when.keywords: Value error, "
         "a keyword must not be blank"),
        ("{metadata: {tier: []}}", "rule 'a': when.metadata: Value error, tier: list of allowed "
         "values must not be empty"),
        ("{metadata: [tier]}", "rule 'a': when.metadata: Input should be a valid dictionary"),
        ("{min_sentiment: -2}", "when.min_sentiment: Input should be greater than or equal to -1"),
        ("{min_sentiment: 0.5, max_sentiment: -0.5}", "min_sentiment 0.5 is above max_sentiment"),
        ("{urgency: [extreme]}", "when.urgency.0: Input should be 'low', 'medium' or 'high'"),
    ],
)
def test_malformed_conditions_name_the_line(when: str, message: str) -> None:
    text = f"rules:\n  - name: a\n    handler: kb\n    when: {when}\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("p.yaml line ")


def test_customer_state_acts_on_the_recorded_reading_not_on_the_text() -> None:
    from pinworks_contracts.messages import CustomerSignal, CustomerState
    from pinworks_router.policy import load_policy

    threat = ticket("This is the third time I am writing. I will go to the ombudsman.")
    cond = Conditions.model_validate({"customer_state": ["legal_threat", "fraud"]})
    policy = parse_policy("rules:\n  - name: r\n    handler: kb\n")
    assert mismatch(cond, policy, threat, CLS, TicketFeatures(threat)) is None, (
        "without a recorded reading the text is read")
    calm = CustomerState(signals=[], sentiment=0.1, version="v")
    assert mismatch(cond, policy, threat, CLS, TicketFeatures(threat, calm)) == (
        "customer state has no signal, rule needs one of ['legal_threat', 'fraud']")
    fraud = CustomerState(signals=[CustomerSignal(kind="fraud", evidence="scam")],
                          sentiment=-0.2, version="v")
    features = TicketFeatures(ticket("Where is my card?"), fraud)
    assert mismatch(cond, policy, features.ticket, CLS, features) is None
    assert features.used["customer_state"] == ["fraud"]

    confident = CLS.model_copy(update={"confidence": 0.995})  # above the shipped error-budget gates
    evaluation = route(load_policy(), threat, confident)
    assert evaluation.decision.rule == "customer-at-risk-to-person"
    assert evaluation.decision.handler == "human"
    assert route(load_policy(), threat, confident, calm).decision.handler != "human"


def test_customer_state_condition_names_known_signals_only() -> None:
    with pytest.raises(PolicyError, match="customer_state"):
        parse_policy("rules:\n  - name: r\n    handler: kb\n    when: {customer_state: [angry]}\n")
