"""The classifier's audit reason says which stage of the cascade decided."""

from __future__ import annotations

from pinworks_classifier.domain import classification_reason
from pinworks_contracts.messages import Classification, IntentScore


def _classification() -> Classification:
    return Classification(
        intent="card_arrival",
        confidence=0.38,
        alternatives=[
            IntentScore(intent="card_arrival", score=0.38),
            IntentScore(intent="card_delivery_estimate", score=0.2),
        ],
        out_of_scope=False,
        model_version="intent-cascade-00000000",
    )


def test_reason_names_the_second_stage_only_when_it_was_used() -> None:
    assert "sentence-embedding stage" in classification_reason(_classification(), second_stage=True)
    plain = classification_reason(_classification())
    assert plain == "intent card_arrival at confidence 0.380 (runner-up card_delivery_estimate at 0.200)"
