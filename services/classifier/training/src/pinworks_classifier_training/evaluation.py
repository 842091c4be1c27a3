"""Evaluate a loaded model on a labelled CSV: figures, latency, reliability diagram."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_classifier.model import IntentModel
from pinworks_classifier.model.data import OOS_LABEL

from .metrics import classification_report


def latency_profile(
    model: IntentModel, texts: Sequence[str], batch_size: int = 32, max_single: int = 1000
) -> dict[str, Any]:
    """Per-ticket latency: one text per call (the service path) and micro-batches."""
    sample = list(texts[:max_single])
    model.predict(sample[:1])  # warm caches so the first call does not skew p99
    single = []
    for t in sample:
        t0 = time.perf_counter()
        model.predict([t])
        single.append(time.perf_counter() - t0)
    per_text = []
    for i in range(0, len(sample), batch_size):
        chunk = sample[i : i + batch_size]
        t0 = time.perf_counter()
        model.predict(chunk)
        per_text.append((time.perf_counter() - t0) / len(chunk))
    ms = np.asarray(single) * 1e3
    bms = np.asarray(per_text) * 1e3
    return {
        "n": len(sample),
        "single_ms": {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)},
        "batch_size": batch_size,
        "batch_per_text_ms": {f"p{q}": float(np.percentile(bms, q)) for q in (50, 95, 99)},
    }


def evaluate(
    model: IntentModel, texts: Sequence[str], labels: Sequence[str], batch_size: int = 500
) -> dict[str, Any]:
    """All metrics for labelled texts (`oos` marks out-of-scope rows)."""
    intents = np.asarray(model.intents)
    probs_parts, flag_parts, escalated_parts = [], [], []
    for i in range(0, len(texts), batch_size):
        b = model.score(texts[i : i + batch_size])
        probs_parts.append(b.in_scope_probs)
        flag_parts.append(b.flagged)
        escalated_parts.append(b.escalated)
    probs = np.vstack(probs_parts)
    flagged = np.concatenate(flag_parts)
    escalated = np.concatenate(escalated_parts)
    pred = intents[probs.argmax(axis=1)]
    conf = probs.max(axis=1)
    report = classification_report(list(labels), list(pred), conf, flagged, OOS_LABEL)
    unknown = sorted(set(labels) - set(model.intents) - {OOS_LABEL})
    report["unknown_labels"] = unknown
    report["model_version"] = model.version
    report["escalated_share"] = float(escalated.mean()) if len(escalated) else 0.0
    return report


def plot_reliability(report: dict[str, Any], path: Path, title: str) -> None:
    """Reliability diagram (accuracy vs confidence per bin, with counts) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = report["calibration"]
    bins = [b for b in cal["bins"] if b["n"]]
    fig, (ax, axn) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    width = 1.0 / cal["n_bins"]
    ax.bar([b["lo"] for b in bins], [b["acc"] for b in bins], width=width, align="edge",
           edgecolor="black", alpha=0.7, label="accuracy in bin")  # fmt: skip
    ax.plot([b["conf"] for b in bins], [b["acc"] for b in bins], "o", color="C3", ms=4,
            label="mean confidence")  # fmt: skip
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}\nECE = {cal['ece']:.4f}")
    ax.legend(loc="upper left")
    axn.bar([b["lo"] for b in bins], [b["n"] for b in bins], width=width, align="edge",
            edgecolor="black")  # fmt: skip
    axn.set_yscale("log")
    axn.set_xlabel("confidence")
    axn.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
