"""Public inference API: `IntentModel.load(...).predict(texts)`; numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as _artifact
from .data import OOS_LABEL

MAX_BATCH = 1000
TOP_K = 3


@dataclass(frozen=True)
class IntentScore:
    """One candidate intent with its calibrated probability."""

    intent: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """Classifier output for one ticket text."""

    intent: str
    confidence: float
    alternatives: tuple[IntentScore, ...]
    out_of_scope: bool


def default_artifact_dir() -> Path:
    """The artifact shipped inside the package (`pinworks_classifier/artifacts/current`)."""
    return Path(__file__).resolve().parent.parent / "artifacts" / "current"


@dataclass
class ScoredBatch:
    """Intermediate calibrated outputs, shared by `predict` and the evaluation code."""

    in_scope_probs: np.ndarray  # (n, n_intents), calibrated, rows sum to 1
    p_oos: np.ndarray  # (n,)
    flagged: np.ndarray  # (n,) bool


def calibrated_scores(art: _artifact.LinearArtifact, texts: Sequence[str]) -> ScoredBatch:
    """Temperature-scaled softmax over intents + OOS, then OOS split off and in-scope
    probabilities renormalized and passed through the isotonic map of the top score."""
    raw = art.featurizer.transform(texts).dot(art.weights) + art.bias
    ins, p_oos = split_oos(raw, art.labels.index(OOS_LABEL), art.temperature)
    ins = apply_isotonic(ins, art.iso_x, art.iso_y)
    return ScoredBatch(ins, p_oos, p_oos >= art.oos_threshold)


def split_oos(raw: np.ndarray, oos_col: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """P(oos) from the softmax over all columns, and the in-scope distribution as a softmax
    over the intent columns alone (equal to renormalizing, but without underflow)."""
    z = raw / temperature
    p_oos = softmax(z)[:, oos_col]
    return softmax(np.delete(z, oos_col, axis=1)), p_oos


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_isotonic(probs: np.ndarray, iso_x: np.ndarray, iso_y: np.ndarray) -> np.ndarray:
    """Rescale each row so its top probability follows the isotonic map; the others keep
    their ratios (sharing the remaining mass), so rows still sum to 1 and stay sorted."""
    if len(iso_x) == 0:
        return probs
    top = probs.max(axis=1)
    new_top = np.interp(top, iso_x, iso_y)
    rest = np.clip(1.0 - top, 1e-12, None)
    factor = (1.0 - new_top) / rest
    out = probs * factor[:, None]
    out[np.arange(len(probs)), probs.argmax(axis=1)] = new_top
    return out


class IntentModel:
    """A loaded intent classifier. Thread-safe for concurrent `predict` calls (read-only)."""

    version: str
    manifest: dict[str, Any]
    intents: tuple[str, ...]

    def __init__(self, art: _artifact.LinearArtifact, manifest: dict[str, Any]) -> None:
        self._art = art
        self.manifest = manifest
        self.version = str(manifest["version"])
        self.intents = tuple(label for label in art.labels if label != OOS_LABEL)

    @classmethod
    def load(cls, artifact_dir: Path | None = None) -> IntentModel:
        """Load an artifact directory (default: the one shipped in the package)."""
        art, manifest = _artifact.load(Path(artifact_dir or default_artifact_dir()))
        return cls(art, manifest)

    def score(self, texts: Sequence[str]) -> ScoredBatch:
        """Calibrated probability matrix for a batch (used by evaluation)."""
        return calibrated_scores(self._art, texts)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict a micro-batch (sized for 1..1000 texts; larger inputs are processed in
        chunks of 1000 so memory stays bounded, and an empty input gives an empty list)."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a sequence of texts, not a single str")
        out: list[Prediction] = []
        for start in range(0, len(texts), MAX_BATCH):
            out.extend(self._predict_chunk(texts[start : start + MAX_BATCH]))
        return out

    def _predict_chunk(self, texts: Sequence[str]) -> list[Prediction]:
        batch = self.score(texts)
        probs = batch.in_scope_probs
        k = min(TOP_K, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i in range(len(texts)):
            alts = tuple(IntentScore(self.intents[j], float(probs[i, j])) for j in top[i])
            out.append(
                Prediction(
                    intent=alts[0].intent,
                    confidence=alts[0].score,
                    alternatives=alts,
                    out_of_scope=bool(batch.flagged[i]),
                )
            )
        return out
