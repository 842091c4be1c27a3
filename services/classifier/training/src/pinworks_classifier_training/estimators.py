"""The estimators training fits: scikit-learn's LinearSVC, MLP, isotonic and logistic
regressions, and the temperature and OOS-threshold searches. Inference reads only the arrays
they leave in the artifact, never these objects."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pinworks_classifier.model import artifact as _artifact
from pinworks_classifier.model.features import FeatureConfig, Featurizer, SparseRows

from .config import TrainConfig


def as_csr_matrix(rows: SparseRows) -> Any:
    """The featurizer's rows as a scipy.sparse.csr_matrix, the input scikit-learn takes."""
    from scipy.sparse import csr_matrix

    return csr_matrix((rows.values, rows.indices, rows.indptr), shape=(rows.n_rows, rows.n_cols))


def fit_linear(
    cfg: TrainConfig, texts: list[str], labels: np.ndarray, label_order: list[str]
) -> tuple[Featurizer, np.ndarray, np.ndarray]:
    """Fit featurizer + linear SVM; returns weights (n_features, n_labels) in label_order."""
    from sklearn.svm import LinearSVC

    fz = Featurizer(FeatureConfig(**asdict(cfg.features))).fit(texts)
    x = as_csr_matrix(fz.transform(texts))
    clf = LinearSVC(C=cfg.C, class_weight=cfg.class_weight, random_state=cfg.seed)
    clf.fit(x, labels)
    order = [list(clf.classes_).index(lab) for lab in label_order]
    w = clf.coef_[order].T.astype(np.float32)
    b = clf.intercept_[order].astype(np.float32)
    return fz, w, b


def raw_scores(fz: Featurizer, w: np.ndarray, b: np.ndarray, texts: list[str]) -> np.ndarray:
    return fz.transform(texts).dot(w) + b


@dataclass
class HeadWeights:
    """The second stage's layers: an MLP (w1 of width > 0) or a softmax layer (width 0)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    input_scale: float


def fit_head(cfg: TrainConfig, embeddings: np.ndarray, y_idx: np.ndarray, n_labels: int) -> HeadWeights:
    """One-hidden-layer MLP on scaled embeddings, one output column per label (a label absent
    from the rows gets a constant very low score)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    present = np.unique(y_idx)
    if len(present) < 3:
        raise ValueError("the embedding head needs at least 3 labels in the training rows")
    clf = MLPClassifier(
        hidden_layer_sizes=(cfg.head_hidden,), alpha=cfg.head_alpha, max_iter=cfg.head_epochs,
        random_state=cfg.seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(embeddings * cfg.head_input_scale, y_idx)
    w2 = np.zeros((cfg.head_hidden, n_labels), np.float32)
    b2 = np.full(n_labels, -30.0, np.float32)
    w2[:, clf.classes_] = clf.coefs_[1]
    b2[clf.classes_] = clf.intercepts_[1]
    return HeadWeights(
        clf.coefs_[0].astype(np.float32), clf.intercepts_[0].astype(np.float32), w2, b2,
        cfg.head_input_scale,
    )  # fmt: skip


def fit_temperature(raw: np.ndarray, y_idx: np.ndarray, oos_col: int) -> float:
    """Temperature minimising the NLL of the in-scope (renormalised) softmax on held-out rows."""
    ins = np.delete(raw, oos_col, axis=1)

    def nll(t: float) -> float:
        z = ins / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(z)), y_idx].mean())

    grid = np.exp(np.linspace(np.log(0.01), np.log(10.0), 200))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.linspace(best * 0.95, best * 1.05, 41)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def fit_isotonic(conf: np.ndarray, correct: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Monotone map confidence -> accuracy (pool-adjacent-violators via scikit-learn). Floored
    at 1/n_classes: the top of n probabilities can never be lower, and 0 would read as 'surely
    wrong' for what is still the best guess."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=1.0 / n_classes, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit(conf, correct.astype(np.float64))
    return iso.X_thresholds_.astype(np.float32), iso.y_thresholds_.astype(np.float32)


NO_ISOTONIC = (np.zeros(0, np.float32), np.zeros(0, np.float32))
"""The isotonic map of a stage calibrated by temperature only."""


def isotonic_map(
    conf: np.ndarray, correct: np.ndarray, n_classes: int, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The stage's isotonic map (`fit_isotonic`), or none when the config turns isotonic off."""
    return fit_isotonic(conf, correct, n_classes) if cfg.isotonic else NO_ISOTONIC


def pick_oos_threshold(
    p_oos_in: np.ndarray, max_false_alarm: float, floor: float = 0.05, population: int | None = None
) -> float:
    """Lowest threshold flagging at most `max_false_alarm` of in-scope rows, but never below
    `floor` (on separable toy data the quantile would be ~0 and flag everything). With
    `population`, the share is of that many rows (the scores given are a subset of them)."""
    s = np.sort(p_oos_in)[::-1]
    k = int(np.floor(max_false_alarm * (population if population is not None else len(s))))
    thr = float(np.nextafter(s[k], np.float64(1.0))) if k < len(s) else 0.0
    return max(thr, floor)


def fit_confidence(features: np.ndarray, correct: np.ndarray) -> _artifact.ConfidenceModel:
    """Logistic regression of 'the answer is right' on the confidence features, returned
    over the raw features. With too few rows, or only one outcome among them, the model is
    the answer's own top probability (weight 1 on its log-odds)."""
    from sklearn.linear_model import LogisticRegression

    identity = _artifact.ConfidenceModel(np.eye(features.shape[1])[0], 0.0)
    if len(correct) < 20 or correct.all() or not correct.any():
        return identity
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std == 0] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=3000).fit((features - mean) / std, correct)
    coef = clf.coef_[0] / std
    return _artifact.ConfidenceModel(coef, float(clf.intercept_[0] - coef @ mean))


def out_of_fold_confidence(features: np.ndarray, correct: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each fold's rows scored by a confidence model fitted on the other folds' rows, so the
    reported selective accuracy never scores a row with a model that saw it."""
    out = np.zeros(len(correct))
    for fold in np.unique(folds):
        te = folds == fold
        out[te] = fit_confidence(features[~te], correct[~te]).probability(features[te])
    return out

