"""Unit tests of training's figures and its confidence model."""

from __future__ import annotations

import numpy as np
import pytest

from pinworks_classifier.model.core import N_CONFIDENCE_FEATURES
from pinworks_classifier.model.features import FeatureConfig, Featurizer
from pinworks_classifier_training.estimators import as_csr_matrix, fit_confidence, out_of_fold_confidence
from pinworks_classifier_training.metrics import macro_f1, oos_metrics, reliability, selective


def test_scikit_learn_reads_the_featurizer_rows_as_they_are() -> None:
    fz = Featurizer(FeatureConfig()).fit(["a b c", "b c d", "card top up"])
    rows = fz.transform(["a b", "", "card top", "d"])
    w = np.random.default_rng(0).normal(size=(fz.n_features, 4)).astype(np.float32)
    np.testing.assert_allclose(as_csr_matrix(rows) @ w, rows.dot(w), rtol=1e-4, atol=1e-5)


def test_reliability_ece_by_hand() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 1, 0])
    # bins: 0.95 -> acc 1.0 (gap 0.05), 0.55 -> acc 0.5 (gap 0.05)
    assert reliability(conf, correct, n_bins=10)["ece"] == pytest.approx(0.05)


def test_selective_accuracy_at_80_coverage() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    correct = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    s = selective(conf, correct, thresholds=(0.5,))
    assert s["at_80_coverage"]["accuracy"] == pytest.approx(7 / 8)
    assert s["by_threshold"][0] == {"threshold": 0.5, "coverage": 0.5, "accuracy": 1.0}


def test_macro_f1_and_oos_metrics() -> None:
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx((2 / 3 + 0.8) / 2)
    m = oos_metrics(np.array([1, 1, 0, 0, 0, 0], bool), np.array([1, 0, 1, 0, 0, 0], bool))
    assert m["oos_recall"] == 0.5
    assert m["false_alarm_rate"] == 0.25


def test_with_too_few_rows_the_confidence_model_is_the_top_probability() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(10, N_CONFIDENCE_FEATURES))
    model = fit_confidence(features, np.ones(10, bool))
    top = 1 / (1 + np.exp(-features[:, 0]))
    np.testing.assert_allclose(model.probability(features), top)


def test_the_confidence_model_learns_which_feature_tells_right_from_wrong() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, N_CONFIDENCE_FEATURES))
    correct = features[:, -2] > 0  # only the neighbours' agreement tells
    folds = np.arange(400) % 4
    p = out_of_fold_confidence(features, correct, folds)
    assert p[correct].min() > p[~correct].max() - 0.5
    assert np.mean((p > 0.5) == correct) > 0.95
