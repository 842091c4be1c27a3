"""The neighbour memory's integer pre-filter finds the same neighbours as the full product."""

from __future__ import annotations

import numpy as np
import pytest

from pinworks_classifier.model import IntentModel
from pinworks_classifier.model.artifact import dequantize_rows, quantize_rows
from pinworks_classifier.model.memory_index import MemoryIndex


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


REPEATED = 30


def clustered_memory(rng: np.random.Generator, n: int = 3000, dim: int = 64
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows around 20 centres (as the training texts gather by intent), int8 per row,
    with some rows repeated word for word (BANKING77 has duplicate texts)."""
    centres = unit_rows(rng.normal(size=(20, dim)))
    rows = unit_rows(centres[rng.integers(0, 20, n)] + 0.35 * rng.normal(size=(n, dim)))
    rows[n // 2 : n // 2 + REPEATED] = rows[:REPEATED]
    return quantize_rows(rows)


def full_product(memory: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = queries @ memory.T
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def test_the_pre_filter_finds_the_nearest_rows_the_full_product_finds() -> None:
    rng = np.random.default_rng(4)
    q, scale = clustered_memory(rng)
    memory = dequantize_rows(q, scale)
    index = MemoryIndex(q, scale, memory)
    near = unit_rows(memory[rng.integers(0, len(memory), 100)] + 0.2 * rng.normal(size=(100, 64)))
    far = unit_rows(rng.normal(size=(100, 64)))  # like an off-topic text: nothing close
    queries = np.concatenate([near, far, memory[:5]])
    idx, sims = index.nearest(queries, 10)
    ref_idx, ref_sims = full_product(memory, queries, 10)
    for row in range(len(queries)):
        # the same similarities; a repeated row may stand in for its copy at the k-th place
        np.testing.assert_allclose(np.sort(sims[row]), np.sort(ref_sims[row]), atol=1e-6)
        assert {original(i, len(memory)) for i in idx[row]} == {
            original(i, len(memory)) for i in ref_idx[row]}


def original(row: int, n: int) -> int:
    """The row a repeated row of `clustered_memory` copies (itself if it is no copy)."""
    return row - n // 2 if n // 2 <= row < n // 2 + REPEATED else row


def test_each_query_is_answered_alone_whatever_its_batch() -> None:
    rng = np.random.default_rng(5)
    q, scale = clustered_memory(rng, n=500)
    index = MemoryIndex(q, scale, dequantize_rows(q, scale))
    queries = unit_rows(rng.normal(size=(9, 64)))
    idx, sims = index.nearest(queries, 10)
    for row in range(len(queries)):
        one_idx, one_sims = index.nearest(queries[row : row + 1], 10)
        assert set(one_idx[0]) == set(idx[row])
        np.testing.assert_allclose(np.sort(one_sims[0]), np.sort(sims[row]), atol=1e-6)


def test_a_memory_smaller_than_k_returns_every_row() -> None:
    rng = np.random.default_rng(6)
    q, scale = quantize_rows(unit_rows(rng.normal(size=(4, 8))))
    idx, _ = MemoryIndex(q, scale, dequantize_rows(q, scale)).nearest(
        unit_rows(rng.normal(size=(2, 8))), 10)
    assert idx.shape == (2, 4) and all(set(row) == {0, 1, 2, 3} for row in idx.tolist())


@pytest.fixture(scope="module")
def model() -> IntentModel:
    return IntentModel.load()


def test_the_shipped_model_answers_alike_with_and_without_the_pre_filter(model: IntentModel) -> None:
    """tools/check_memory_index.py runs this over all 13,103 BANKING77 train and CLINC150
    val/oos_val rows; here a few escalated texts of each kind."""
    memory = model._art.head.neighbours  # type: ignore[union-attr]
    assert memory is not None and memory.index is not None
    texts = ["what's the weather like in paris tomorrow", "can you tell me a joke",
             "Is there a fee for exchanging euros to dollars in the app?",
             "My card arrived but the PIN letter did not. I moved house last month and the bank "
             "still has my old address, can you send it again?"]
    fast = model.predict(texts)
    index, memory.index = memory.index, None
    try:
        full = model.predict(texts)
    finally:
        memory.index = index
    assert all(p.second_stage for p in full)
    for a, b in zip(fast, full, strict=True):
        assert (a.intent, a.out_of_scope) == (b.intent, b.out_of_scope)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_the_integer_products_are_exact_at_the_extremes() -> None:
    """Query parts at +-63 against rows at -128/127 (the largest products a query can meet): the
    kernel's products are the exact integer ones on this processor (a saturating kernel fails)."""
    from pinworks_classifier.model.memory_index import _ZERO_POINT, _two_int8

    rng = np.random.default_rng(6)
    q = rng.choice(np.array([-128, 127], np.int8), size=(300, 384))
    index = MemoryIndex(q, np.ones(300, np.float32), q.astype(np.float32))
    queries = unit_rows(rng.choice(np.array([-1.0, 1.0]), size=(8, 384)) * q[:8])
    parts, _, _ = _two_int8(queries)
    products = index._session.run(None, {"a": parts})[0]
    exact = (parts.astype(np.int64) - _ZERO_POINT) @ q.T.astype(np.int64)
    np.testing.assert_array_equal(products, exact)
