"""Distil a static-embedding encoder (one vector per WordPiece token) from a shipped ONNX one.

The idea of model2vec (Tulkens & van Dongen, 2024), done with the graph we already ship and
without torch: every token of the encoder's vocabulary is run alone through the transformer
(`[CLS] token [SEP]`, mean-pooled as the graph pools), the vectors are weighted by a Zipf
prior over the vocabulary's rank (SIF: `a / (a + p(token))`, so frequent tokens weigh less),
centred and reduced by PCA. A text's embedding is then the mean of its tokens' rows,
L2-normalized: a table look-up and a sum instead of six transformer layers, ~50x cheaper.

Writes `static.npz` (`embeddings` float32 (vocab, dim)) beside a copy of the tokenizer and
`static.json` (recipe and source hash): the layout `SentenceEncoder` reads as a static encoder.
Offline only; nothing at run time downloads or distils anything.

Usage: python tools/distill_static.py --encoder DIR --out DIR [--dims 256] [--sif 1e-4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from pinworks_classifier.model.encoder import (
    MODEL_FILE,
    STATIC_FILE,
    STATIC_RECIPE_FILE,
    TOKENIZER_FILE,
    encoder_sha256,
)


def token_vectors(encoder_dir: Path, threads: int, batch: int = 256) -> np.ndarray:
    """(vocab, dim): each token alone through the graph, between [CLS] and [SEP]."""
    tok = Tokenizer.from_file(str(encoder_dir / TOKENIZER_FILE))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(encoder_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    n = tok.get_vocab_size()
    dim = int(session.get_outputs()[0].shape[-1])
    out = np.zeros((n, dim), np.float32)
    # In batches: dynamic int8 quantization then scales a token's activations by its batch's
    # range, which moves a table row in its last digits (the table is fixed once written, so
    # that costs no determinism at run time) and makes the distillation ~8x cheaper.
    for start in range(0, n, batch):
        tokens = np.arange(start, min(n, start + batch), dtype=np.int64)
        ids = np.column_stack([np.full_like(tokens, cls_id), tokens, np.full_like(tokens, sep_id)])
        out[tokens] = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    return out


def distil(vectors: np.ndarray, dims: int, sif: float) -> tuple[np.ndarray, dict[str, float]]:
    """Zipf-SIF weighting of the rows (by vocabulary rank, as model2vec does), then PCA."""
    centred = vectors - vectors.mean(axis=0)
    _u, s, vt = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, vt.shape[0])
    reduced = centred @ vt[:dims].T
    explained = float((s[:dims] ** 2).sum() / (s**2).sum())
    inv_rank = 1.0 / np.arange(2, len(vectors) + 2)
    proba = inv_rank / inv_rank.sum()
    weights = sif / (sif + proba)
    return (reduced * weights[:, None]).astype(np.float32), {"pca_explained_variance": round(explained, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, required=True, help="ONNX encoder directory")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dims", type=int, default=256)
    ap.add_argument("--sif", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    t0 = time.perf_counter()
    vectors = token_vectors(args.encoder, args.threads)
    table, stats = distil(vectors, args.dims, args.sif)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / STATIC_FILE, embeddings=table)
    shutil.copyfile(args.encoder / TOKENIZER_FILE, args.out / TOKENIZER_FILE)
    recipe = {
        "kind": "static token embeddings distilled from a transformer (model2vec-style)",
        "source_encoder": args.encoder.name,
        "source_sha256": encoder_sha256(args.encoder),
        "dims": int(table.shape[1]),
        "vocab": int(table.shape[0]),
        "sif_coefficient": args.sif,
        **stats,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (args.out / STATIC_RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", "utf-8")
    print(json.dumps(recipe, indent=2))


if __name__ == "__main__":
    main()
