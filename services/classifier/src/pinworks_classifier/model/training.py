"""Training: cross-validated metrics, calibration, OOS threshold, then the final artifact.

Needs scikit-learn (only here); inference does not.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as _artifact
from .core import apply_isotonic, split_oos
from .data import OOS_LABEL, Dataset, data_sha256, load_intents, load_training_data
from .features import FeatureConfig, Featurizer
from .metrics import classification_report, oos_metrics, reliability

VERSION_PREFIX = "intent-svm"


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


def pick_oos_threshold(p_oos_in: np.ndarray, max_false_alarm: float, floor: float = 0.05) -> float:
    """Lowest threshold flagging at most `max_false_alarm` of in-scope rows, but never below
    `floor` (on separable toy data the quantile would be ~0 and flag everything)."""
    s = np.sort(p_oos_in)[::-1]
    k = int(np.floor(max_false_alarm * len(s)))
    thr = float(np.nextafter(s[k], np.float64(1.0))) if k < len(s) else 0.0
    return max(thr, floor)


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def cross_validate(
    train: Dataset, dev: Dataset, intents: list[str], cfg: TrainConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """Stratified k-fold out-of-fold scores on the training set, fold-averaged scores on dev."""
    from sklearn.model_selection import StratifiedKFold

    labels = [*intents, OOS_LABEL]
    y = np.asarray(train.labels)
    oof = np.zeros((len(y), len(labels)), np.float32)
    dev_raw = np.zeros((len(dev), len(labels)), np.float32)
    skf = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    texts = np.asarray(train.texts, dtype=object)
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        t0 = time.perf_counter()
        fz, w, b = _fit_linear(cfg, list(texts[tr]), y[tr], labels)
        oof[te] = _raw_scores(fz, w, b, list(texts[te]))
        if len(dev):
            dev_raw += _raw_scores(fz, w, b, dev.texts) / cfg.folds
        log(f"fold {k + 1}/{cfg.folds} done in {time.perf_counter() - t0:.1f}s")
    return {"labels": labels, "oof": oof, "dev_raw": dev_raw}


def evaluate_cv(
    train: Dataset, dev: Dataset, cv: dict[str, Any], cfg: TrainConfig
) -> tuple[dict[str, Any], float, tuple[np.ndarray, np.ndarray], float]:
    """Calibration + OOS threshold fitted on out-of-fold rows, and every reported figure.

    Calibration (temperature, isotonic) is fitted on out-of-fold scores; its own ECE is
    measured with 2-fold cross-fitting so the reported figure is not fitted on itself."""
    labels: list[str] = cv["labels"]
    oof: np.ndarray = cv["oof"]
    oos_col = labels.index(OOS_LABEL)
    intents = labels[:oos_col]
    y = np.asarray(train.labels)
    is_bank = np.asarray([g == "banking77" for g in train.groups])
    y_idx = np.asarray([intents.index(v) for v in y[is_bank]])
    temp = fit_temperature(oof[is_bank], y_idx, oos_col)
    empty = (np.zeros(0, np.float32), np.zeros(0, np.float32))
    ins_t, p_oos = _calibrated(oof, oos_col, temp, empty)
    pred_idx = ins_t[is_bank].argmax(axis=1)
    conf_t = ins_t[is_bank].max(axis=1)
    correct = pred_idx == y_idx
    iso = fit_isotonic(conf_t, correct, len(intents)) if cfg.isotonic else empty
    # Cross-fitted isotonic confidences for an honest ECE of the shipped calibration.
    conf_cf = conf_t.copy()
    if cfg.isotonic:
        rng = np.random.default_rng(cfg.seed)
        half = rng.permutation(len(conf_t)) % 2 == 0
        for a, b in ((half, ~half), (~half, half)):
            ix, iy = fit_isotonic(conf_t[a], correct[a], len(intents))
            conf_cf[b] = np.interp(conf_t[b], ix, iy)
    thr = pick_oos_threshold(p_oos[is_bank], cfg.max_in_scope_false_alarm)
    flagged = p_oos >= thr
    pred_labels = np.asarray(intents)[ins_t.argmax(axis=1)]
    bank_report = classification_report(y[is_bank], pred_labels[is_bank], conf_cf, flagged[is_bank])
    bank_report["calibration_temperature_only"] = {"ece": reliability(conf_t, correct)["ece"]}
    metrics: dict[str, Any] = {
        "protocol": (
            f"stratified {cfg.folds}-fold CV over BANKING77 train + CLINC150 non-banking "
            "train/oos_train; CLINC150 val/oos_val scored by the fold models (averaged)"
        ),
        "banking77_cv": bank_report,
        "clinc_train_oos_cv": oos_metrics(np.ones((~is_bank).sum(), bool), flagged[~is_bank]),
    }
    dev_p_oos = _calibrated(cv["dev_raw"], oos_col, temp, iso)[1] if len(dev) else np.zeros(0)
    groups = np.asarray([g.split(":")[0] for g in dev.groups])
    for g in ("clinc_val", "clinc_oos_val"):
        m = groups == g
        if m.any():
            metrics[f"{g}_oos"] = oos_metrics(np.ones(m.sum(), bool), dev_p_oos[m] >= thr)
    # Trade-off table so an operator can pick another threshold without retraining.
    points = []
    for fa in (0.002, 0.005, 0.01, 0.02, 0.05):
        t = pick_oos_threshold(p_oos[is_bank], fa)
        row = {"max_in_scope_false_alarm": fa, "threshold": t}
        row["in_scope_false_alarm"] = float((p_oos[is_bank] >= t).mean())
        row["recall_clinc_train_cv"] = float((p_oos[~is_bank] >= t).mean())
        for g in ("clinc_val", "clinc_oos_val"):
            m = groups == g
            if m.any():
                row[f"recall_{g}"] = float((dev_p_oos[m] >= t).mean())
        points.append(row)
    metrics["oos_operating_points"] = points
    return metrics, temp, iso, thr


def train_model(
    data_dir: Path,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Cross-validate, calibrate, fit on all data and write an artifact to `out_dir`."""
    cfg = cfg or TrainConfig()
    started = time.perf_counter()
    intents = load_intents(data_dir)
    train, dev = load_training_data(data_dir)
    unknown = sorted(set(train.labels) - {*intents, OOS_LABEL})
    if unknown:
        raise ValueError(f"training labels not in categories.json: {unknown[:5]}")
    log(f"training rows: {len(train)} ({sum(g == 'banking77' for g in train.groups)} in-scope)")
    cv = cross_validate(train, dev, intents, cfg, log)
    metrics, temp, iso, thr = evaluate_cv(train, dev, cv, cfg)
    fz, w, b = _fit_linear(cfg, train.texts, np.asarray(train.labels), cv["labels"])
    art = _artifact.LinearArtifact(
        featurizer=fz,
        labels=cv["labels"],
        weights=w,
        bias=b,
        temperature=temp,
        iso_x=iso[0],
        iso_y=iso[1],
        oos_threshold=thr,
    )
    extra = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": "BANKING77 intents (77) + out-of-scope flag",
        "training_data": {
            "sha256": data_sha256(data_dir),
            "rows": len(train),
            "in_scope_rows": sum(g == "banking77" for g in train.groups),
            "oos_rows": sum(lab == OOS_LABEL for lab in train.labels),
        },
        "parameters": {
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
        },
        "metrics": metrics,
        "library_versions": _library_versions(),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return _artifact.save(art, out_dir, extra, VERSION_PREFIX)
