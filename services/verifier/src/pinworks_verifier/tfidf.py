"""The feature weighting the verifier's scorers share: L2-normalised log-tf-idf."""

from __future__ import annotations

from collections import Counter

import numpy as np


def log_tfidf(counts: Counter[str], vocab: dict[str, int],
              idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(feature ids, weights) of one text's in-vocabulary features; empty when it has none."""
    pairs = [(i, c) for f, c in counts.items() if (i := vocab.get(f)) is not None]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    found_ids, found_counts = zip(*pairs, strict=True)
    ids = np.array(found_ids, np.int64)
    tf = np.array(found_counts, np.float32)
    values = (1 + np.log(tf)) * idf[ids]
    return ids, values / float(np.linalg.norm(values))
