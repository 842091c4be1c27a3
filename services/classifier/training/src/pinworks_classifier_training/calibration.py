"""What calibration fits for each stage and the helpers every cross-validated figure uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinworks_classifier.model import artifact as _artifact
from pinworks_classifier.model.data import Dataset

from .config import TrainConfig
from .estimators import fit_isotonic
from .metrics import selective


@dataclass
class Truth:
    """The training rows' answers: which are in scope, and each one's intent index (-1: OOS)."""

    labels: np.ndarray
    is_bank: np.ndarray
    y_full: np.ndarray

    @classmethod
    def of(cls, train: Dataset, intents: list[str]) -> Truth:
        labels = np.asarray(train.labels)
        is_bank = np.asarray([g == "banking77" for g in train.groups])
        y_full = np.full(len(labels), -1)
        y_full[is_bank] = [intents.index(v) for v in labels[is_bank]]
        return cls(labels, is_bank, y_full)

    @property
    def in_scope(self) -> np.ndarray:
        """The in-scope rows' intent indices."""
        return self.y_full[self.is_bank]


@dataclass
class Calibration:
    """What evaluate_cv fits for one stage: temperature, isotonic map, OOS threshold."""

    temperature: float
    iso: tuple[np.ndarray, np.ndarray]
    oos_threshold: float


@dataclass
class CascadeFit:
    """The second stage's fitted blend, escalation rule and calibration."""

    blend: dict[str, float]
    escalate_below: float
    escalate_oos_at: float
    calibration: Calibration
    confidence: _artifact.ConfidenceModel | None = None


@dataclass
class CascadeScores:
    """The cascade's out-of-fold results: which rows escalate, final probabilities, OOS flags,
    cross-fitted confidences (in-scope rows) and the blended P(oos) of every row."""

    escalate: np.ndarray
    probs: np.ndarray
    flagged: np.ndarray
    conf_cf: np.ndarray
    blend_oos: np.ndarray


def selective_at_80(pred: np.ndarray, conf: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy on the 80% of rows with the highest confidence (as every report computes it)."""
    return float(selective(conf, pred == truth)["at_80_coverage"]["accuracy"])


def cross_fitted(conf: np.ndarray, correct: np.ndarray, n_classes: int, cfg: TrainConfig) -> np.ndarray:
    """Isotonic confidences fitted on one half and applied to the other, for an honest ECE."""
    out = conf.copy()
    if not cfg.isotonic:
        return out
    half = np.random.default_rng(cfg.seed).permutation(len(conf)) % 2 == 0
    for a, b in ((half, ~half), (~half, half)):
        if a.any() and b.any():
            ix, iy = fit_isotonic(conf[a], correct[a], n_classes)
            out[b] = np.interp(conf[b], ix, iy)
    return out

