"""The shipped sentence encoder: real int8 MiniLM through onnxruntime, no download."""

from __future__ import annotations

import numpy as np
import pytest

from pinworks_classifier.model.encoder import SentenceEncoder, encoder_sha256, shipped_encoder_dir


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(shipped_encoder_dir())


def test_vectors_are_unit_length_and_384_wide(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["my card has not arrived", "", "a" * 5000])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated_texts(encoder: SentenceEncoder) -> None:
    card, late_card, weather = encoder.encode(
        ["my card still hasn't arrived", "when will the card you sent me be delivered", "is it going to rain"]
    )
    assert float(card @ late_card) > float(card @ weather) + 0.2


def test_a_text_gets_the_same_vector_whatever_its_batch(encoder: SentenceEncoder) -> None:
    alone = encoder.encode(["why was my top-up reverted"])[0]
    among = encoder.encode(["hi", "why was my top-up reverted", "x " * 300])[1]
    assert np.array_equal(alone, among)


def test_hash_covers_graph_and_tokenizer() -> None:
    digest = encoder_sha256(shipped_encoder_dir())
    assert len(digest) == 64
    assert (shipped_encoder_dir() / "LICENSE").read_text().lstrip().startswith("Apache License")
