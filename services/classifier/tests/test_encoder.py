"""The shipped sentence encoder: real int8 MiniLM through onnxruntime, no download."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pinworks_classifier.model.encoder import (
    STATIC_FILE,
    TOKENIZER_FILE,
    SentenceEncoder,
    encoder_sha256,
    has_encoder,
    is_static,
    shipped_encoder_dir,
)


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


def _static_encoder(tmp_path: Path, dim: int = 8) -> tuple[Path, np.ndarray]:
    """A static encoder directory: a random table over the shipped tokenizer's vocabulary."""
    out = tmp_path / "static"
    out.mkdir()
    shutil.copyfile(shipped_encoder_dir() / TOKENIZER_FILE, out / TOKENIZER_FILE)
    table = np.random.default_rng(0).normal(size=(30522, dim)).astype(np.float32)
    np.savez(out / STATIC_FILE, embeddings=table)
    return out, table


def test_a_static_encoder_averages_its_tokens_rows(tmp_path: Path) -> None:
    directory, table = _static_encoder(tmp_path)
    assert is_static(directory) and has_encoder(directory) and not is_static(shipped_encoder_dir())
    encoder = SentenceEncoder(directory)
    ids = [i for i in encoder._tokenizer.encode("my card has not arrived").ids if i not in (101, 102)]
    expected = table[ids].mean(axis=0)
    vector = encoder.encode(["my card has not arrived"])[0]
    assert vector == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)
    assert encoder.dim == 8


def test_a_static_encoder_reads_the_whole_text_and_the_same_text_alike(tmp_path: Path) -> None:
    encoder = SentenceEncoder(_static_encoder(tmp_path)[0])
    long = "my card has not arrived. " * 20 + "what is the exchange rate"
    cut = "my card has not arrived. " * 20
    vectors = encoder.encode([long, cut, "", "my card has not arrived"])
    assert not np.allclose(vectors[0], vectors[1])  # tokens past 128 still count
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 0.0, 1.0], abs=1e-5)
    assert np.array_equal(encoder.encode(["my card has not arrived"])[0], vectors[3])


def test_a_static_encoders_hash_covers_its_table(tmp_path: Path) -> None:
    directory, table = _static_encoder(tmp_path)
    before = encoder_sha256(directory)
    np.savez(directory / STATIC_FILE, embeddings=table * 2)
    assert encoder_sha256(directory) != before != encoder_sha256(shipped_encoder_dir())
