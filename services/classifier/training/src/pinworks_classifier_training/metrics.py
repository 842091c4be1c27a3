"""Evaluation metrics shared by training (cross-validation) and the `eval` command; numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Share of exact matches."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Unweighted mean F1 over the classes present in y_true (as scikit-learn's 'macro')."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    f1s = []
    for c in np.unique(t):
        tp = float(np.sum((t == c) & (p == c)))
        fp = float(np.sum((t != c) & (p == c)))
        fn = float(np.sum((t == c) & (p != c)))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else float("nan")


def reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """Equal-width reliability bins and the expected calibration error (ECE)."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        m = ids == b
        n = int(m.sum())
        if n == 0:
            bins.append({"lo": edges[b], "hi": edges[b + 1], "n": 0, "conf": None, "acc": None})
            continue
        c, a = float(conf[m].mean()), float(correct[m].mean())
        ece += n / max(len(conf), 1) * abs(c - a)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": n, "conf": c, "acc": a})
    return {"ece": float(ece), "n_bins": n_bins, "bins": bins}


def selective(
    conf: np.ndarray, correct: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> dict[str, Any]:
    """Accuracy on the answered share when only predictions with conf >= threshold are kept,
    plus the accuracy on the 80% most confident (the routing target of issue #3)."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    rows = []
    for t in thresholds:
        keep = conf >= t
        rows.append(
            {
                "threshold": float(t),
                "coverage": float(keep.mean()) if len(conf) else float("nan"),
                "accuracy": float(correct[keep].mean()) if keep.any() else float("nan"),
            }
        )
    at80: dict[str, float] = {}
    if len(conf):
        order = np.argsort(-conf, kind="stable")
        k = max(1, int(round(0.8 * len(conf))))
        at80 = {
            "coverage": k / len(conf),
            "accuracy": float(correct[order[:k]].mean()),
            "threshold": float(conf[order[k - 1]]),
        }
    return {"by_threshold": rows, "at_80_coverage": at80}


def oos_metrics(is_oos_true: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Out-of-scope recall (flagged among true OOS) and false alarms (flagged among in-scope)."""
    is_oos_true = np.asarray(is_oos_true, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    n_oos = int(is_oos_true.sum())
    n_in = int((~is_oos_true).sum())
    return {
        "n_oos": n_oos,
        "n_in_scope": n_in,
        "oos_recall": float(flagged[is_oos_true].mean()) if n_oos else float("nan"),
        "false_alarm_rate": float(flagged[~is_oos_true].mean()) if n_in else float("nan"),
    }


def classification_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    conf: np.ndarray,
    flagged: np.ndarray,
    oos_label: str = "oos",
) -> dict[str, Any]:
    """All figures for a labelled set: in-scope quality, selective accuracy, OOS, calibration."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    conf = np.asarray(conf, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    is_oos = t == oos_label
    ins = ~is_oos
    correct = p[ins] == t[ins]
    end_to_end = correct & ~flagged[ins]
    rel = reliability(conf[ins], correct)
    return {
        "n": int(len(t)),
        "in_scope": {
            "n": int(ins.sum()),
            "accuracy": accuracy(t[ins], p[ins]),
            "macro_f1": macro_f1(t[ins], p[ins]),
            "accuracy_with_oos_flag": float(end_to_end.mean()) if ins.any() else float("nan"),
        },
        "selective": selective(conf[ins], correct),
        "out_of_scope": oos_metrics(is_oos, flagged),
        "calibration": rel,
    }
