"""Cross-validation: the folds every row belongs to, each fold's out-of-fold scores and the
neighbour votes cast by memories that never hold the row being voted on."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_classifier.model import artifact as _artifact
from pinworks_classifier.model.core import NeighbourVotes, head_scores, neighbour_votes
from pinworks_classifier.model.data import OOS_LABEL, Dataset
from pinworks_classifier.model.encoder import SentenceEncoder

from .config import TrainConfig
from .estimators import fit_head, fit_linear, raw_scores


def fold_assignment(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """The CV fold of every training row (stratified, shuffled). `tools/finetune_encoder.py`
    uses the same function, so its per-fold encoders hold out exactly these rows."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    out = np.full(len(y), -1)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (_tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        out[te] = k
    return out


def fold_assignment_sha256(folds: np.ndarray) -> str:
    return hashlib.sha256(folds.astype(np.int8).tobytes()).hexdigest()


FoldScorer = Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(fold k, its training rows, its held-out rows) -> second-stage log-probabilities of the
held-out rows and of the dev set, from models that never saw the held-out rows."""


def cross_validate(
    train: Dataset,
    dev: Dataset,
    intents: list[str],
    cfg: TrainConfig,
    log: Callable[[str], None],
    second_stage: FoldScorer | None = None,
) -> dict[str, Any]:
    """Stratified k-fold out-of-fold scores on the training set, fold-averaged scores on dev;
    with `second_stage` also those of the embedding head."""
    labels = [*intents, OOS_LABEL]
    y = np.asarray(train.labels)
    oof = np.zeros((len(y), len(labels)), np.float32)
    dev_raw = np.zeros((len(dev), len(labels)), np.float32)
    head_oof = np.zeros_like(oof)
    head_dev = np.zeros_like(dev_raw)
    texts = np.asarray(train.texts, dtype=object)
    folds = fold_assignment(list(y), cfg.folds, cfg.seed)
    for k in range(cfg.folds):
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        t0 = time.perf_counter()
        fz, w, b = fit_linear(cfg, list(texts[tr]), y[tr], labels)
        oof[te] = raw_scores(fz, w, b, list(texts[te]))
        if len(dev):
            dev_raw += raw_scores(fz, w, b, dev.texts) / cfg.folds
        if second_stage is not None:
            head_oof[te], fold_dev = second_stage(k, tr, te)
            if len(dev):
                head_dev += fold_dev / cfg.folds
        log(f"fold {k + 1}/{cfg.folds} done in {time.perf_counter() - t0:.1f}s")
    cv: dict[str, Any] = {"labels": labels, "oof": oof, "dev_raw": dev_raw, "folds": folds}
    if second_stage is not None:
        cv.update(head_oof=head_oof, head_dev=head_dev)
    return cv


def frozen_stage(
    cfg: TrainConfig, embeddings: tuple[np.ndarray, np.ndarray], y_idx: np.ndarray, n_labels: int
) -> FoldScorer:
    """The pretrained encoder saw none of our rows, so every text is embedded once and only
    the MLP is fitted per fold."""
    emb_train, emb_dev = embeddings

    def score(_k: int, tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        head = fit_head(cfg, emb_train[tr], y_idx[tr], n_labels)
        return head_scores(head, emb_train[te]), head_scores(head, emb_dev)

    return score


def memory_of(cfg: TrainConfig, embeddings: np.ndarray, labels: np.ndarray) -> _artifact.NeighbourMemory:
    """The neighbour memory of one fold, or of the final model."""
    return _artifact.NeighbourMemory(
        embeddings, labels, cfg.neighbours_k, cfg.neighbours_temperature, cfg.neighbours_background,
        cfg.neighbours_weight, cfg.neighbours_floor,
    )  # fmt: skip


def neighbour_cv(
    cfg: TrainConfig,
    fold_embeddings: Callable[[int], np.ndarray],
    final: tuple[np.ndarray, np.ndarray],
    y_idx: np.ndarray,
    folds: np.ndarray,
    n_labels: int,
) -> tuple[NeighbourVotes, NeighbourVotes]:
    """Out-of-fold votes (each fold's rows against the other folds' rows only, all embedded by
    `fold_embeddings(fold)`, that fold's encoder) and the dev rows' votes against every
    training row, as the final model (`final`: its training and dev embeddings) casts them."""
    emb_final, emb_dev = final
    k = cfg.neighbours_k
    labels = np.zeros((len(y_idx), k), np.int64)
    weights = np.zeros((len(y_idx), k))
    nearest = np.zeros(len(y_idx))
    probs = np.zeros((len(y_idx), n_labels))
    for fold in np.unique(folds):
        tr, te = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        emb = fold_embeddings(int(fold))
        v = neighbour_votes(memory_of(cfg, emb[tr], y_idx[tr]), emb[te], n_labels)
        labels[te], weights[te], nearest[te], probs[te] = v.labels, v.weights, v.nearest, v.probs
    dev = neighbour_votes(memory_of(cfg, emb_final, y_idx), emb_dev, n_labels)
    return NeighbourVotes(labels, weights, nearest, probs), dev


def same_for_every_fold(embeddings: np.ndarray) -> Callable[[int], np.ndarray]:
    """The pretrained encoder saw no training row: every fold embeds them alike."""
    return lambda _fold: embeddings


def embed_texts(encoder_dir: Path, groups: list[list[str]], log: Callable[[str], None]) -> list[np.ndarray]:
    """Sentence embeddings of each group of texts, with all cores."""
    t0 = time.perf_counter()
    encoder = SentenceEncoder(encoder_dir, threads=os.cpu_count() or 1)
    out = [encoder.encode(texts) for texts in groups]
    n = sum(len(g) for g in groups)
    log(f"embedded {n} texts with {encoder_dir.name} in {time.perf_counter() - t0:.1f}s")
    return out

