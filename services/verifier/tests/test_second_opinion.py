"""The second-opinion reader (numpy complement naive Bayes) and the check built on it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from pinworks_contracts.messages import Classification, IntentScore, TicketEnvelope, TicketSubmission
from pinworks_verifier.factory import build_checks
from pinworks_verifier.second_opinion import (
    SecondOpinionCheck,
    SecondOpinionModel,
    class_mass_digest,
    pair_features,
)
from pinworks_verifier.settings import VerifierSettings

BANKING77 = Path(__file__).resolve().parents[3] / "services/classifier/data/banking77/train.csv"


@pytest.fixture(scope="module")
def model() -> SecondOpinionModel:
    return SecondOpinionModel.load()


def envelope(body: str, intent: str | None) -> TicketEnvelope:
    classification = None if intent is None else Classification(
        intent=intent, confidence=0.95, out_of_scope=False, model_version="m",
        alternatives=[IntentScore(intent=intent, score=0.95)])
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T", business_unit="retail", body=body),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=classification)


def test_features_are_words_bigrams_and_order_free_pairs() -> None:
    feats = pair_features("Card  DECLINED, card!")
    assert feats["card"] == 2 and feats["declined"] == 1
    assert feats["card declined"] == 1 and feats["declined card"] == 1
    assert feats["~card|declined"] == 1  # one pair per two distinct words, sorted
    assert not any(f.startswith("#") for f in feats)  # no character n-grams (the classifier's)


def test_scores_are_complement_naive_bayes() -> None:
    """Two labels, two features: the weight of a feature for a label is minus the log of its
    smoothed share in the *other* labels' mass."""
    mass = np.array([[3.0, 1.0], [1.0, 3.0]])
    toy = SecondOpinionModel(["a", "b"], ["x", "y"], np.ones(2, np.float32), mass, {"alpha": 1.0})
    weights = -np.log(np.array([[2 / 6, 4 / 6], [4 / 6, 2 / 6]]))  # complement of a is b's mass
    expected = np.array([1.0, 0.0]) @ weights.T
    assert np.allclose(toy.scores("x"), expected - expected.max())
    reading = toy.read("x x", "b")
    assert reading.best == "a"
    assert reading.gap == pytest.approx(float(expected.max() - expected[1]))
    assert toy.read("x", "a").gap == 0.0


def test_the_artifact_loads_and_its_manifest_matches_its_data(model: SecondOpinionModel) -> None:
    meta = model.meta
    training = meta["training_data"]
    assert training["banking77/train.csv"] == hashlib.sha256(BANKING77.read_bytes()).hexdigest()
    assert training["fold_excluded"] == 0
    assert meta["format"] == "pinworks-verifier-cnb/1"
    assert len(model.labels) == 77 and model.margin is not None and model.margin > 0
    assert meta["threshold"]["chosen_on"].startswith("fold 0 validation half")


def test_the_artifact_version_is_its_content_hash() -> None:
    folder = resources.files("pinworks_verifier").joinpath("artifacts")
    body = json.loads(folder.joinpath("second_opinion.json").read_text())
    with folder.joinpath("second_opinion.npz").open("rb") as handle:
        arrays = dict(np.load(handle))
    version, digest = body.pop("version"), body.pop("content_sha256")
    recomputed = class_mass_digest(arrays["rows"], arrays["cols"], arrays["mass"], arrays["idf"],
                                   json.dumps(body, sort_keys=True).encode())
    assert recomputed == digest and version == f"second_opinion-{digest[:8]}"


def test_a_clear_disagreement_fails_naming_both_intents(model: SecondOpinionModel) -> None:
    result = SecondOpinionCheck(model).run(envelope("I want to change my PIN, how do I do that?",
                                                    "card_arrival"))
    assert not result.passed
    (reason,) = result.reasons
    assert "change_pin" in reason and "card_arrival" in reason
    assert result.details["second_opinion"] == "change_pin"


def test_agreement_passes(model: SecondOpinionModel) -> None:
    result = SecondOpinionCheck(model).run(envelope("Where is my new card? It still hasn't arrived.",
                                                    "card_arrival"))
    assert result.passed and result.reasons == ()
    assert result.details["gap"] == 0.0


def test_a_small_disagreement_below_the_margin_passes(model: SecondOpinionModel) -> None:
    text = "I want to change my PIN, how do I do that?"
    gap = model.read(text, "card_arrival").gap
    assert SecondOpinionCheck(model, margin=gap + 0.01).run(envelope(text, "card_arrival")).passed
    assert not SecondOpinionCheck(model, margin=gap - 0.01).run(envelope(text, "card_arrival")).passed


def test_intents_it_cannot_judge_pass(model: SecondOpinionModel) -> None:
    check = SecondOpinionCheck(model)
    assert check.run(envelope("Where is my card?", None)).details == {"applies": False}
    assert check.run(envelope("Where is my card?", "not_a_banking_intent")).passed


def test_a_model_without_a_margin_needs_one() -> None:
    toy = SecondOpinionModel(["a"], ["x"], np.ones(1, np.float32), np.ones((1, 1)), {"alpha": 1.0})
    with pytest.raises(ValueError, match="no margin"):
        SecondOpinionCheck(toy)
    assert SecondOpinionCheck(toy, margin=1.0).margin == 1.0


def test_the_factory_adds_the_check_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "second_opinion" not in [c.name for c in build_checks(VerifierSettings())]
    monkeypatch.setenv("VERIFIER_SECOND_OPINION", "true")
    monkeypatch.setenv("VERIFIER_SECOND_OPINION_MARGIN", "1.5")
    checks = {c.name: c for c in build_checks(VerifierSettings())}
    check = checks["second_opinion"]
    assert isinstance(check, SecondOpinionCheck) and check.margin == 1.5
