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
STATIC_FILE = "static.npz"  # a static encoder: one vector per token (tools/distill_static.py)
STATIC_RECIPE_FILE = "static.json"
DEFAULT_ENCODER = "all-minilm-l6-v2-int8"
MAX_TOKENS = 128


def shipped_encoder_dir(name: str = DEFAULT_ENCODER) -> Path:
    """Where the package keeps a shipped encoder (`pinworks_classifier/encoder/<name>`)."""
    return Path(__file__).resolve().parent.parent / "encoder" / name


def is_static(encoder_dir: Path) -> bool:
    """A static encoder (a token table, no transformer) rather than an ONNX graph."""
    return (encoder_dir / STATIC_FILE).is_file() and not (encoder_dir / MODEL_FILE).is_file()


def has_encoder(encoder_dir: Path) -> bool:
    """The directory holds an encoder of either kind."""
    return (encoder_dir / MODEL_FILE).is_file() or is_static(encoder_dir)


def encoder_sha256(encoder_dir: Path) -> str:
    """Content hash of the graph (or token table) and tokenizer: what an artifact's head was
    trained against."""
    h = hashlib.sha256()
    for name in (STATIC_FILE if is_static(encoder_dir) else MODEL_FILE, TOKENIZER_FILE):
        h.update(name.encode())
        h.update((encoder_dir / name).read_bytes())
    return h.hexdigest()


class SentenceEncoder:
    """Texts -> (n, dim) float32 unit vectors. One instance per process; `threads` bounds the
    cores it uses (1 in a service replica, so replicas scale by processes).

    A directory with `static.npz` instead of `model.onnx` is a static encoder: a text's vector
    is the mean of its WordPiece tokens' rows (no transformer, no truncation)."""

    def __init__(self, encoder_dir: Path, threads: int = 1) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(encoder_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._static: np.ndarray | None = None
        if is_static(encoder_dir):
            self._tokenizer.no_truncation()
            with np.load(encoder_dir / STATIC_FILE, allow_pickle=False) as z:
                self._static = np.ascontiguousarray(z["embeddings"], np.float32)
            special = {self._tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
            self._special = np.asarray(sorted(i for i in special if i is not None), np.int64)
            self.dim = int(self._static.shape[1])
            return
        import onnxruntime as ort

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
        if self._static is not None:
            return self._encode_static(texts, out)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out[row] = self._session.run(None, feed)[0][0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)

    def _encode_static(self, texts: Sequence[str], out: np.ndarray) -> np.ndarray:
        assert self._static is not None
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = np.asarray(encoding.ids, np.int64)
            ids = ids[~np.isin(ids, self._special)]
            if len(ids):
                out[row] = self._static[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)
