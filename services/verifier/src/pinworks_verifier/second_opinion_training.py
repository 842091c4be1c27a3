"""Training the second-opinion reader, and reading tickets with readers that never trained on them.

Training is counting (complement naive Bayes, `second_opinion`), so a reader per CV fold costs
seconds: `out_of_fold_readings` trains one reader per fold (every training row but that fold's)
and one on every row, and reads each training row with the reader of its own fold, every other
ticket with the reader trained on every row. The service never trains; the build and
measurement scripts under services/verifier/eval do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pinworks_verifier.second_opinion import SecondOpinionModel, pair_features

ALPHA = 0.3
"""Complement-NB smoothing (how it was chosen: services/verifier/eval/build_second_opinion.py)."""
MIN_DF = 2
"""A feature is kept when at least this many training texts hold it."""
EVERY_ROW = "all"
"""The reader name of the reader trained on every training row."""


def train_reader(texts: Sequence[str], labels: Sequence[str],
                 classes: Sequence[str]) -> tuple[SecondOpinionModel, np.ndarray]:
    """Complement NB: per-class sums of L2-normalised log-tf-idf vectors (the model, and the
    class x feature mass the artifact stores sparsely)."""
    docs = [pair_features(text) for text in texts]
    df: Counter[str] = Counter()
    for feats in docs:
        df.update(feats.keys())
    vocab = sorted(f for f, n in df.items() if n >= MIN_DF)
    index = {f: i for i, f in enumerate(vocab)}
    idf = np.array([math.log((1 + len(docs)) / (1 + df[f])) + 1 for f in vocab], np.float32)
    label_index = {label: i for i, label in enumerate(classes)}
    mass = np.zeros((len(classes), len(vocab)), np.float64)
    for feats, label in zip(docs, labels, strict=True):
        ids = np.array([index[f] for f in feats if f in index], np.int64)
        if len(ids):
            values = (1 + np.log([feats[vocab[i]] for i in ids])) * idf[ids]
            mass[label_index[label], ids] += values / np.linalg.norm(values)
    stored = mass.astype(np.float32)
    model = SecondOpinionModel(list(classes), vocab, idf, stored, {"alpha": ALPHA, "min_df": MIN_DF})
    return model, stored


@dataclass(frozen=True)
class Query:
    """A ticket to read: its text, the intent the classifier gave it, and, when it is one of the
    training rows, which (so only a reader that left its fold out may read it)."""

    text: str
    intent: str
    training_row: int | None = None


@dataclass(frozen=True)
class Reading:
    reader: str
    """The fold whose rows the reader left out (`"0"` ... ), or `EVERY_ROW`."""
    best: str
    gap: float
    """How far the classified intent trails the reader's best (0: they agree)."""


Trainer = Callable[[Sequence[str], Sequence[str], Sequence[str]], tuple[SecondOpinionModel, np.ndarray]]


def out_of_fold_readings(texts: Sequence[str], labels: Sequence[str], folds: Sequence[int],
                         queries: Sequence[Query], trainer: Trainer = train_reader) -> list[Reading]:
    """Each query read by a reader that never trained on it: a training row by the reader that
    left its fold out, any other text by the reader trained on every row."""
    if not len(texts) == len(labels) == len(folds):
        raise ValueError("one label and one fold per training text")
    classes = sorted(set(labels))
    readers: dict[str, SecondOpinionModel] = {}

    def reader(name: str) -> SecondOpinionModel:
        if name not in readers:
            rows = [i for i, fold in enumerate(folds) if name == EVERY_ROW or str(fold) != name]
            readers[name] = trainer([texts[i] for i in rows], [labels[i] for i in rows], classes)[0]
        return readers[name]

    out = []
    for query in queries:
        name = EVERY_ROW if query.training_row is None else str(folds[query.training_row])
        reading = reader(name).read(query.text, query.intent)
        out.append(Reading(name, reading.best, reading.gap))
    return out
