"""Unit tests of the featurizer, calibration helpers, metrics and artifact quantization."""

from __future__ import annotations

import numpy as np
import pytest

from pinworks_classifier.model.artifact import EmbeddingHead, quantize
from pinworks_classifier.model.core import apply_isotonic, head_scores, softmax
from pinworks_classifier.model.features import FeatureConfig, Featurizer, char_wb_ngrams, normalize
from pinworks_classifier.model.metrics import macro_f1, oos_metrics, reliability, selective


def test_normalize_folds_case_accents_and_quotes() -> None:
    assert normalize("  Café\u2019s   CARD ") == "cafe's card"


def test_char_wb_ngrams_respect_word_boundaries() -> None:
    assert char_wb_ngrams(["ab"], 2, 3) == [" a", "ab", "b ", " ab", "ab "]


def test_featurizer_rows_are_l2_normalised_per_block() -> None:
    fz = Featurizer(FeatureConfig()).fit(["my card is lost", "card arrived late", "top up failed"])
    x = fz.transform(["my card is lost", "zzz", ""]).to_scipy().toarray()
    n_words = len(fz.word_vocab)
    assert np.linalg.norm(x[0, :n_words]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(x[0, n_words:]) == pytest.approx(1.0, abs=1e-5)
    assert not x[2].any()


def test_sparse_dot_matches_dense() -> None:
    fz = Featurizer(FeatureConfig()).fit(["a b c", "b c d", "card top up"])
    rows = fz.transform(["a b", "", "card top", "d"])
    w = np.random.default_rng(0).normal(size=(fz.n_features, 4)).astype(np.float32)
    np.testing.assert_allclose(rows.dot(w), rows.to_scipy().toarray() @ w, rtol=1e-4, atol=1e-5)


def test_quantize_roundtrip_is_close() -> None:
    w = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    q, s = quantize(w)
    assert q.dtype == np.int8
    assert np.abs(q * s - w).max() <= s.max() / 2 + 1e-6


def test_apply_isotonic_keeps_rows_normalised_and_sorted() -> None:
    p = softmax(np.array([[3.0, 1.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]]))
    out = apply_isotonic(p, np.array([0.0, 1.0]), np.array([0.2, 0.9]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert (out.argmax(axis=1) == p.argmax(axis=1)).all()
    np.testing.assert_allclose(out.max(axis=1), 0.2 + 0.7 * p.max(axis=1))


def test_apply_isotonic_never_lets_the_runner_up_overtake_the_guess() -> None:
    p = np.array([[0.5, 0.4, 0.1], [0.34, 0.33, 0.33]])
    # a map that says "a top score of 0.5 is right only 10% of the time"
    out = apply_isotonic(p, np.array([0.0, 1.0]), np.array([0.0, 0.2]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert (out.argmax(axis=1) == p.argmax(axis=1)).all()
    assert (out[:, 0] > out[:, 1]).all()


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


def _head(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, scale: float) -> EmbeddingHead:
    empty = np.zeros(0, np.float32)
    return EmbeddingHead(
        encoder="e", encoder_sha256="", input_scale=scale, w1=w1, b1=b1, w2=w2, b2=b2, blend={},
        escalate_below=0.0, escalate_oos_at=1.0, temperature=1.0, iso_x=empty, iso_y=empty,
        oos_threshold=1.0,
    )  # fmt: skip


def test_head_of_hidden_width_zero_is_a_softmax_layer_over_the_embedding() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    w2 = rng.normal(size=(6, 3)).astype(np.float32) * 40
    b2 = rng.normal(size=3).astype(np.float32)
    logp = head_scores(_head(np.zeros((6, 0), np.float32), np.zeros(0, np.float32), w2, b2, 1.0), x)
    logits = x @ w2 + b2
    expected = logits - logits.max(axis=1, keepdims=True)
    expected = expected - np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(logp, np.maximum(expected, np.log(1e-9)), rtol=1e-5, atol=1e-5)
    assert logp.min() == pytest.approx(np.log(1e-9))  # the scale 40 pushes some below the floor


def test_head_with_a_hidden_layer_applies_relu() -> None:
    x = np.asarray([[1.0, -1.0]], np.float32)
    w1 = np.asarray([[1.0, 0.0], [0.0, 1.0]], np.float32)  # hidden = relu(x) = [1, 0]
    w2 = np.asarray([[0.0, 1.0], [5.0, 0.0]], np.float32)  # logits = [0, 1]
    logp = head_scores(_head(w1, np.zeros(2, np.float32), w2, np.zeros(2, np.float32), 1.0), x)
    np.testing.assert_allclose(np.exp(logp), [[1 / (1 + np.e), np.e / (1 + np.e)]], rtol=1e-5)
