"""Sentence encoder: all-MiniLM-L6-v2 as an int8 ONNX graph, run with onnxruntime.

A fixed, pretrained feature extractor (never fitted on our data), shipped inside the package
so nothing is downloaded. Texts are tokenized with the model's own WordPiece tokenizer,
mean-pooled over their tokens and L2-normalized.

Each text runs through the graph on its own. Dynamic int8 quantization scales activations by
the range of the whole input tensor, so in a batch a text's vector would depend on its
neighbours; alone, the same ticket always gets the same vector (and the same audit trail).
Length-sorted batches would save about a third of the time; determinism is worth more here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_ENCODER = "all-minilm-l6-v2-int8"
MAX_TOKENS = 128


def shipped_encoder_dir(name: str = DEFAULT_ENCODER) -> Path:
    """Where the package keeps a shipped encoder (`pinworks_classifier/encoder/<name>`)."""
    return Path(__file__).resolve().parent.parent / "encoder" / name


def encoder_sha256(encoder_dir: Path) -> str:
    """Content hash of the graph and tokenizer: what an artifact's head was trained against."""
    h = hashlib.sha256()
    for name in (MODEL_FILE, TOKENIZER_FILE):
        h.update(name.encode())
        h.update((encoder_dir / name).read_bytes())
    return h.hexdigest()


class SentenceEncoder:
    """Texts -> (n, dim) float32 unit vectors. One instance per process; `threads` bounds the
    cores it uses (1 in a service replica, so replicas scale by processes)."""

    def __init__(self, encoder_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(encoder_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(encoder_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out[row] = self._session.run(None, feed)[0][0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)
