"""Public inference API: `IntentModel.load(...).predict(texts)`.

A two-stage cascade. Every text is scored by the TF-IDF linear model (numpy, ~0.2 ms). Only
the texts it is unsure of (low confidence, or some chance of being out of scope) are also
embedded by the sentence encoder and re-scored by a blend of both models, which is right more
often but costs ~3 ms a text. When the artifact keeps a memory of its training embeddings, the
labels of a text's nearest training examples vote in the blend too, and its confidence comes
from a small model that also weighs how far those neighbours agree with the answer. An artifact
without the second stage scores with the first only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import artifact as _artifact
from .data import OOS_LABEL
from .encoder import SentenceEncoder

MAX_BATCH = 1000
TOP_K = 3
HEAD_LOGP_FLOOR = float(np.log(1e-9))


@dataclass(frozen=True)
class CandidateIntent:
    """One candidate intent with its calibrated probability."""

    intent: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """Classifier output for one ticket text."""

    intent: str
    confidence: float
    alternatives: tuple[CandidateIntent, ...]
    out_of_scope: bool
    second_stage: bool = False  # re-scored by the sentence-embedding stage of the cascade
    cost_ms: float = 0.0  # compute spent on this text: its share of the batch, per stage it took


def default_artifact_dir() -> Path:
    """The artifact shipped inside the package (`pinworks_classifier/artifacts/current`)."""
    return Path(__file__).resolve().parent.parent / "artifacts" / "current"


@dataclass
class ScoredBatch:
    """Intermediate calibrated outputs, shared by `predict` and the evaluation code."""

    in_scope_probs: np.ndarray  # (n, n_intents), calibrated, rows sum to 1
    p_oos: np.ndarray  # (n,)
    flagged: np.ndarray  # (n,) bool
    escalated: np.ndarray  # (n,) bool: re-scored by the second stage
    linear_ms: float = 0.0  # wall time of the linear stage over the batch
    second_stage_ms: float = 0.0  # wall time of the second stage over the escalated texts

    def cost_ms(self) -> np.ndarray:
        """Each text's share of the compute: the linear stage split evenly over the batch, the
        second stage over the texts it re-scored (~0.2 ms against ~3 ms, so a batch mean would
        misstate both)."""
        n = len(self.escalated)
        per_text = np.full(n, self.linear_ms / max(n, 1))
        n_escalated = int(self.escalated.sum())
        if n_escalated:
            per_text[self.escalated] += self.second_stage_ms / n_escalated
        return per_text


def calibrated_scores(
    art: _artifact.LinearArtifact, texts: Sequence[str], encoder: SentenceEncoder | None = None
) -> ScoredBatch:
    """Temperature-scaled softmax over intents + OOS, then OOS split off and in-scope
    probabilities renormalized and passed through the isotonic map of the top score; the
    rows the cascade escalates are replaced by the calibrated blend of both stages."""
    started = time.perf_counter()
    raw = art.featurizer.transform(texts).dot(art.weights) + art.bias
    oos_col = art.labels.index(OOS_LABEL)
    linear_ins, p_oos = split_oos(raw, oos_col, art.temperature)
    ins = apply_isotonic(linear_ins, art.iso_x, art.iso_y)
    head = art.head
    if head is None or encoder is None:
        linear_ms = (time.perf_counter() - started) * 1000
        return ScoredBatch(ins, p_oos, p_oos >= art.oos_threshold, np.zeros(len(ins), bool), linear_ms)
    linear_conf = (linear_ins if head.escalate_on == _artifact.ESCALATE_ON_TEMPERATURE else ins).max(axis=1)
    escalated = escalation_mask(linear_conf, p_oos, head.escalate_below, head.escalate_oos_at)
    flagged = np.zeros(len(ins), bool)
    rows = [int(i) for i in np.flatnonzero(escalated)]
    linear_done = time.perf_counter()
    if rows:
        embeddings = encoder.encode([texts[i] for i in rows])
        head_logp = head_scores(head, embeddings)
        blended = blend_scores(raw[rows], head_logp, head.blend)
        memory, model = head.neighbours, head.confidence
        votes = None
        if memory is not None:
            votes = neighbour_votes(memory, embeddings, len(art.labels))
            blended = with_votes(blended, votes, memory.weight, memory.floor)
        b_ins, b_oos = split_oos(blended, oos_col, head.temperature)
        if model is not None and votes is not None:
            features = confidence_features(
                b_ins, b_oos, linear_ins[rows], p_oos[rows], head_logp, oos_col, votes
            )
            confidence = np.interp(model.probability(features), head.iso_x, head.iso_y)
            ins[rows] = set_top(b_ins, confidence)
        else:
            ins[rows] = apply_isotonic(b_ins, head.iso_x, head.iso_y)
        p_oos[rows] = b_oos
        flagged[rows] = b_oos >= head.oos_threshold
    linear_ms = (linear_done - started) * 1000
    return ScoredBatch(ins, p_oos, flagged, escalated, linear_ms, (time.perf_counter() - linear_done) * 1000)


@dataclass(frozen=True)
class NeighbourVotes:
    """The k training examples nearest to each text: their labels, the weight of each one's
    vote, and the weighted label distribution (summing to the votes' total weight, below 1)."""

    labels: np.ndarray  # (n, k) label columns
    weights: np.ndarray  # (n, k)
    nearest: np.ndarray  # (n,) cosine similarity of the nearest example
    probs: np.ndarray  # (n, n_labels)


NEIGHBOUR_CHUNK = 256


def neighbour_votes(
    memory: _artifact.NeighbourMemory, embeddings: np.ndarray, n_labels: int
) -> NeighbourVotes:
    """Nearest training examples by cosine similarity (unit vectors: a dot product), a few
    hundred texts at a time so the similarity matrix stays small (~20 MB).

    Each neighbour's weight is exp(temperature x similarity), shared with k abstaining votes at
    the `background` similarity: close examples decide, while a text unlike anything in training
    (a long multi-sentence ticket, an off-topic question) gets a faint vote instead of a
    confident one from examples that are merely the least far away."""
    if len(embeddings) > NEIGHBOUR_CHUNK:
        parts = [
            neighbour_votes(memory, embeddings[i : i + NEIGHBOUR_CHUNK], n_labels)
            for i in range(0, len(embeddings), NEIGHBOUR_CHUNK)
        ]
        return NeighbourVotes(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(NeighbourVotes))
        )
    idx, near = _nearest(memory, embeddings)
    k = idx.shape[1]
    labels = memory.labels[idx]
    scaled = np.exp(memory.temperature * (np.minimum(near, 1.0) - 1.0))  # unit vectors: <= 1
    abstain = k * np.exp(memory.temperature * (memory.background - 1.0))
    weights = scaled / (scaled.sum(axis=1, keepdims=True) + abstain)
    probs = np.zeros((len(embeddings), n_labels))
    np.add.at(probs, (np.repeat(np.arange(len(embeddings)), k), labels.ravel()), weights.ravel())
    return NeighbourVotes(labels, weights, near.max(axis=1), probs)


def _nearest(memory: _artifact.NeighbourMemory, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of the memory and their similarities: through the artifact's integer
    pre-filter when it was loaded with one (the same rows, a quarter of the memory traffic),
    else by the full float32 product."""
    if memory.index is not None:
        return memory.index.nearest(embeddings, memory.k)
    sims = embeddings @ memory.embeddings.T
    k = min(memory.k, sims.shape[1])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def with_votes(blended: np.ndarray, votes: NeighbourVotes, weight: float, floor: float) -> np.ndarray:
    """The blend plus the neighbours' log-vote (floored: a label no neighbour has is unlikely,
    not impossible)."""
    return (blended + weight * np.log(votes.probs + floor)).astype(np.float32)


N_CONFIDENCE_FEATURES = 16


def confidence_features(
    final_ins: np.ndarray,
    final_oos: np.ndarray,
    linear_ins: np.ndarray,
    linear_oos: np.ndarray,
    head_logp: np.ndarray,
    oos_col: int,
    votes: NeighbourVotes,
) -> np.ndarray:
    """What the confidence model of an escalated ticket reads: how peaked each stage's
    distribution is, whether the stages agree, both P(oos), and how far the nearest training
    examples share the answer (label noise shows up as disagreeing neighbours, which no single
    stage's probability reveals). Nothing in it grows with the text's length: training texts
    are short queries, and a model must not extrapolate its trust to long tickets."""
    head_ins = softmax(np.delete(head_logp, oos_col, axis=1))
    answer = final_ins.argmax(axis=1)
    hit = votes.labels == answer[:, None]
    columns = [
        *_peakedness(final_ins), *_peakedness(linear_ins), *_peakedness(head_ins),
        (linear_ins.argmax(axis=1) == answer).astype(np.float64),
        (head_ins.argmax(axis=1) == answer).astype(np.float64),
        final_oos, linear_oos,
        hit.mean(axis=1), (votes.weights * hit).sum(axis=1), votes.nearest,
    ]  # fmt: skip
    return np.column_stack(columns).astype(np.float64)


def _peakedness(probs: np.ndarray) -> list[np.ndarray]:
    """Log-odds of the top probability, log-ratio of top to runner-up, entropy."""
    ordered = np.sort(probs, axis=1)
    top, second = ordered[:, -1], ordered[:, -2]
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1)
    return [
        np.log(top / np.clip(1.0 - top, 1e-9, None) + 1e-9),
        np.log(top + 1e-12) - np.log(second + 1e-12),
        entropy,
    ]


def escalation_mask(
    linear_conf: np.ndarray, linear_p_oos: np.ndarray, below_confidence: float, at_p_oos: float
) -> np.ndarray:
    """Texts the linear stage is unsure of: low confidence, or a real chance of being off-topic."""
    return (linear_conf < below_confidence) | (linear_p_oos >= at_p_oos)


class HeadLayers(Protocol):
    """The layers `head_scores` reads: an artifact's EmbeddingHead, or one still in training."""

    input_scale: float
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray


def head_scores(head: HeadLayers, embeddings: np.ndarray) -> np.ndarray:
    """Log-probabilities of the head over sentence embeddings, floored at log(1e-9): the
    head's near-impossible classes reach -100 and beyond, and such outliers would dominate the
    standardization of the blend (floored: +0.5 point of accuracy). The head is an MLP with one
    ReLU layer, or with a hidden width of 0 a softmax layer straight over the embedding (the
    classification layer a fine-tuned encoder was trained with)."""
    x = embeddings * head.input_scale
    hidden = np.maximum(x @ head.w1 + head.b1, 0.0) if head.w1.shape[1] else x
    logits = hidden @ head.w2 + head.b2
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return np.maximum(logp, HEAD_LOGP_FLOOR)


def blend_scores(linear_raw: np.ndarray, head_logp: np.ndarray, b: dict[str, float]) -> np.ndarray:
    """Weighted sum of both stages' scores, each standardized on in-scope training rows."""
    w = b["head_weight"]
    linear_z = (linear_raw - b["linear_mean"]) / b["linear_std"]
    head_z = (head_logp - b["head_mean"]) / b["head_std"]
    return ((1.0 - w) * linear_z + w * head_z).astype(np.float32)


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
    their ratios (sharing the remaining mass), so rows still sum to 1."""
    if len(iso_x) == 0:
        return probs
    return set_top(probs, np.interp(probs.max(axis=1), iso_x, iso_y))


def set_top(probs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Give each row's top probability the value `confidence`, the others sharing the rest in
    their ratios. The top is kept just above the runner-up: calibration says how sure the
    guess is, it never changes it."""
    top_idx = probs.argmax(axis=1)
    rows = np.arange(len(probs))
    top = probs[rows, top_idx]
    second = np.partition(probs, -2, axis=1)[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    rest = np.clip(1.0 - top, 1e-12, None)
    keeps_order = second / np.clip(rest + second, 1e-12, None) + 1e-6
    new_top = np.clip(np.maximum(confidence, keeps_order), 0.0, 1.0)
    factor = (1.0 - new_top) / rest
    out = probs * factor[:, None]
    out[rows, top_idx] = new_top
    return out


class IntentModel:
    """A loaded intent classifier. Thread-safe for concurrent `predict` calls (read-only)."""

    version: str
    manifest: dict[str, Any]
    intents: tuple[str, ...]

    def __init__(
        self, art: _artifact.LinearArtifact, manifest: dict[str, Any], encoder: SentenceEncoder | None = None
    ) -> None:
        self._art = art
        self._encoder = encoder
        self.manifest = manifest
        self.version = str(manifest["version"])
        self.intents = tuple(label for label in art.labels if label != OOS_LABEL)

    @classmethod
    def load(cls, artifact_dir: Path | None = None, encoder_threads: int = 1) -> IntentModel:
        """Load an artifact directory (default: the one shipped in the package) and, for a
        cascade, its sentence encoder limited to `encoder_threads` cores."""
        art_dir = Path(artifact_dir or default_artifact_dir())
        art, manifest = _artifact.load(art_dir)
        encoder = None
        if art.head is not None:
            encoder = SentenceEncoder(
                _artifact.resolve_encoder_dir(art_dir, art.head.encoder), encoder_threads
            )
        return cls(art, manifest, encoder)

    @property
    def is_cascade(self) -> bool:
        return self._encoder is not None

    def score(self, texts: Sequence[str]) -> ScoredBatch:
        """Calibrated probability matrix for a batch (used by evaluation)."""
        return calibrated_scores(self._art, texts, self._encoder)

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
        cost_ms = batch.cost_ms()
        out = []
        for i in range(len(texts)):
            alts = tuple(CandidateIntent(self.intents[j], float(probs[i, j])) for j in top[i])
            out.append(
                Prediction(
                    intent=alts[0].intent,
                    confidence=alts[0].score,
                    alternatives=alts,
                    out_of_scope=bool(batch.flagged[i]),
                    second_stage=bool(batch.escalated[i]),
                    cost_ms=float(cost_ms[i]),
                )
            )
        return out
