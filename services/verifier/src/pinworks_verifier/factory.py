"""Build the configured checks (used by the app and by the evaluation)."""

from __future__ import annotations

from pinworks_verifier.checks import (
    CompletenessCheck,
    CustomerStateCheck,
    DisagreementCheck,
)
from pinworks_verifier.grounding import GroundednessCheck
from pinworks_verifier.intent_scorer import NaiveBayesIntentScorer
from pinworks_verifier.people import PeopleCheck
from pinworks_verifier.pii import PiiCheck
from pinworks_verifier.policy import PolicyCheck
from pinworks_verifier.promises import PromiseReader
from pinworks_verifier.result import Check
from pinworks_verifier.second_opinion import SecondOpinionCheck, SecondOpinionModel
from pinworks_verifier.settings import VerifierSettings


def build_checks(settings: VerifierSettings) -> list[Check]:
    checks: list[Check] = [
        CompletenessCheck(
            NaiveBayesIntentScorer.load("ticket_intent", settings.model_dir),
            NaiveBayesIntentScorer.load("answer_intent", settings.model_dir),
            settings.ticket_margin, settings.answer_margin,
        ),
        GroundednessCheck(frozenset(settings.grounded_handlers), settings.min_support),
        PiiCheck(settings.pii_allowed),
        PeopleCheck(),
        CustomerStateCheck(settings.negative_sentiment_threshold),
        PolicyCheck(settings.policy_entitlements,
                    PromiseReader.load(settings.model_dir, threshold=settings.promise_threshold)
                    if settings.promise_reader else None),
        DisagreementCheck(),
    ]
    if settings.second_opinion:
        checks.append(SecondOpinionCheck(SecondOpinionModel.load(settings.model_dir),
                                         settings.second_opinion_margin))
    return checks
