"""Unit tests of the featurizer, calibration helpers, neighbour votes and artifact quantization."""

from __future__ import annotations

import numpy as np
import pytest

from pinworks_classifier.model.artifact import (
    EmbeddingHead,
    NeighbourMemory,
    dequantize_rows,
    quantize,
    quantize_rows,
)
from pinworks_classifier.model.core import (
    N_CONFIDENCE_FEATURES,
    NEIGHBOUR_CHUNK,
    ScoredBatch,
    apply_isotonic,
    confidence_features,
    head_scores,
    neighbour_votes,
    set_top,
    softmax,
    with_votes,
)
from pinworks_classifier.model.features import (
    FeatureConfig,
    Featurizer,
    SparseRows,
    char_wb_ngrams,
    normalize,
)


def dense(rows: SparseRows) -> np.ndarray:
    """The rows as a dense matrix, written out entry by entry (no scipy at inference)."""
    out = np.zeros((rows.n_rows, rows.n_cols), np.float32)
    for row in range(rows.n_rows):
        span = slice(rows.indptr[row], rows.indptr[row + 1])
        np.add.at(out[row], rows.indices[span], rows.values[span])
    return out


def test_normalize_folds_case_accents_and_quotes() -> None:
    assert normalize("  Café\u2019s   CARD ") == "cafe's card"


def test_char_wb_ngrams_respect_word_boundaries() -> None:
    assert char_wb_ngrams(["ab"], 2, 3) == [" a", "ab", "b ", " ab", "ab "]


def test_featurizer_rows_are_l2_normalised_per_block() -> None:
    fz = Featurizer(FeatureConfig()).fit(["my card is lost", "card arrived late", "top up failed"])
    x = dense(fz.transform(["my card is lost", "zzz", ""]))
    n_words = len(fz.word_vocab)
    assert np.linalg.norm(x[0, :n_words]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(x[0, n_words:]) == pytest.approx(1.0, abs=1e-5)
    assert not x[2].any()


def test_sparse_dot_matches_dense() -> None:
    fz = Featurizer(FeatureConfig()).fit(["a b c", "b c d", "card top up"])
    rows = fz.transform(["a b", "", "card top", "d"])
    w = np.random.default_rng(0).normal(size=(fz.n_features, 4)).astype(np.float32)
    np.testing.assert_allclose(rows.dot(w), dense(rows) @ w, rtol=1e-4, atol=1e-5)


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


def hand_memory() -> NeighbourMemory:
    """A neighbour memory by hand: three unit vectors, labels 0, 0, 1."""
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32)
    return NeighbourMemory(embeddings, np.array([0, 0, 1]), k=2, temperature=10.0, background=0.7,
                           weight=0.5, floor=0.02)  # fmt: skip


def test_neighbour_votes_weigh_the_nearest_examples_by_similarity() -> None:
    votes = neighbour_votes(hand_memory(), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), n_labels=3)
    assert sorted(votes.labels[0].tolist()) == [0, 0]
    assert sorted(votes.labels[1].tolist()) == [0, 1]
    # similarities 1.0 and 0.8 (both label 0) / 1.0 (label 1) and 0.6 (label 0), with two
    # abstaining votes at 0.7
    e = np.exp
    total0 = e(0.0) + e(-2.0) + 2 * e(-3.0)
    np.testing.assert_allclose(votes.probs[0], [(e(0.0) + e(-2.0)) / total0, 0.0, 0.0], rtol=1e-5)
    total1 = e(0.0) + e(-4.0) + 2 * e(-3.0)
    np.testing.assert_allclose(votes.probs[1], [e(-4.0) / total1, e(0.0) / total1, 0.0], rtol=1e-5)
    np.testing.assert_allclose(votes.nearest, [1.0, 1.0], rtol=1e-6)


def test_a_text_unlike_every_example_gets_a_faint_vote() -> None:
    far = np.array([[0.6, -0.8]], np.float32)  # similarity 0.6 to the nearest example at best
    votes = neighbour_votes(hand_memory(), far, n_labels=3)
    assert votes.probs.sum() < 0.3
    near = neighbour_votes(hand_memory(), np.array([[1.0, 0.0]], np.float32), n_labels=3)
    assert near.probs.sum() > 0.9


def test_the_vote_raises_the_label_the_neighbours_share_and_never_rules_one_out() -> None:
    votes = neighbour_votes(hand_memory(), np.array([[1.0, 0.0]], np.float32), n_labels=3)
    blended = with_votes(np.zeros((1, 3), np.float32), votes, weight=0.5, floor=0.02)
    assert blended[0].argmax() == 0
    assert np.isfinite(blended).all()
    np.testing.assert_allclose(blended[0, 1], 0.5 * np.log(0.02), rtol=1e-6)


def test_confidence_features_see_whether_the_neighbours_share_the_answer() -> None:
    votes = neighbour_votes(hand_memory(), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), n_labels=3)
    final = np.array([[0.9, 0.1], [0.9, 0.1]])  # both answer label 0
    logp = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]))
    features = confidence_features(final, np.array([0.01, 0.2]), final, np.array([0.0, 0.1]), logp, 2, votes)
    assert features.shape == (2, N_CONFIDENCE_FEATURES)
    hit_share, weighted_hit = features[:, -3], features[:, -2]
    np.testing.assert_allclose(hit_share, [1.0, 0.5])
    assert weighted_hit[0] > 0.9 and weighted_hit[1] < 0.1
    np.testing.assert_allclose(features[:, 10], [1.0, 0.0])  # the head agrees with row 0 only
    np.testing.assert_allclose(features[:, 11:13], [[0.01, 0.0], [0.2, 0.1]])


def test_set_top_gives_the_guess_its_confidence_and_keeps_it_the_guess() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.45, 0.05]])
    out = set_top(p, np.array([0.9, 0.1]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert out[0, 0] == pytest.approx(0.9)
    np.testing.assert_allclose(out[0, 1] / out[0, 2], 3.0)
    assert out[1].argmax() == 0


def test_row_quantization_of_embeddings_roundtrips_closely() -> None:
    rows = np.random.default_rng(2).normal(size=(20, 8)).astype(np.float32)
    q, scale = quantize_rows(rows)
    assert q.dtype == np.int8 and scale.shape == (20,)
    assert np.abs(dequantize_rows(q, scale) - rows).max() <= scale.max() / 2 + 1e-6


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


FLOAT32_VOTE_RTOL = 1e-5
"""One query alone and the same query inside a chunk take different BLAS kernels (a vector
product against a matrix product), whose float32 sums may differ by a few units in the last
place (~1e-7 of a similarity of 1.0). The vote's exp(temperature x similarity) multiplies that by
the temperature (10 here): 1e-5 leaves a tenfold margin and still catches any real difference."""


def test_large_batches_are_voted_in_chunks_with_the_same_result() -> None:
    rng = np.random.default_rng(3)
    memory = hand_memory()
    memory.embeddings = unit_rows(rng.normal(size=(50, 2)))
    memory.labels = rng.integers(0, 3, size=50)
    queries = unit_rows(rng.normal(size=(NEIGHBOUR_CHUNK * 2 + 7, 2)))
    whole = neighbour_votes(memory, queries, n_labels=3)
    for start in (0, NEIGHBOUR_CHUNK + 3, len(queries) - 1):
        one = neighbour_votes(memory, queries[start : start + 1], n_labels=3)
        assert sorted(one.labels[0].tolist()) == sorted(whole.labels[start].tolist())
        assert one.probs[0].argmax() == whole.probs[start].argmax()
        np.testing.assert_allclose(one.probs[0], whole.probs[start], rtol=FLOAT32_VOTE_RTOL, atol=1e-7)
        assert one.nearest[0] == pytest.approx(whole.nearest[start], rel=1e-6)


def test_each_text_is_charged_the_stages_it_took() -> None:
    escalated = np.array([True, False, True, False, False])
    batch = ScoredBatch(np.zeros((5, 2)), np.zeros(5), np.zeros(5, bool), escalated, 10.0, 30.0)
    np.testing.assert_allclose(batch.cost_ms(), [17.0, 2.0, 17.0, 2.0, 2.0])
    nothing_escalated = ScoredBatch(np.zeros((2, 2)), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), 1.0)
    np.testing.assert_allclose(nothing_escalated.cost_ms(), [0.5, 0.5])
