"""The feature weighting the verifier's scorers share: L2-normalised log-tf-idf."""

from __future__ import annotations

from collections import Counter

import numpy as np


def log_tfidf(counts: Counter[str], vocab: dict[str, int],
              idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(feature ids, weights) of one text's in-vocabulary features; empty when it has none."""
    pairs = [(vocab[f], c) for f, c in counts.items() if f in vocab]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.fromiter((i for i, _ in pairs), np.int64, len(pairs))
    tf = np.fromiter((c for _, c in pairs), np.float32, len(pairs))
    values = (1 + np.log(tf)) * idf[ids]
    return ids, values / float(np.linalg.norm(values))
