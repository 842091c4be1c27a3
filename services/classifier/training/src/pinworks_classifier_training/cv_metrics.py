"""Every figure training reports, from out-of-fold rows only: the linear stage's calibration,
the cascade (cascade.py), the OOS recall on CLINC150's held-out splits and the table of OOS
operating points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pinworks_classifier.model.core import apply_isotonic, escalation_mask, split_oos
from pinworks_classifier.model.data import OOS_LABEL, Dataset

from .calibration import Calibration, CascadeFit, CascadeScores, Truth, cross_fitted, selective_at_80
from .cascade import LinearOutOfFold, fit_cascade, second_stage_scores
from .config import TrainConfig
from .estimators import fit_temperature, isotonic_map, pick_oos_threshold
from .metrics import classification_report, oos_metrics, reliability

DEV_GROUPS = ("clinc_val", "clinc_oos_val")
FALSE_ALARM_BUDGETS = (0.002, 0.005, 0.01, 0.02, 0.05)

DevFlags = Callable[[float | None], np.ndarray]
"""OOS flags of the dev rows at the fitted threshold (None) or at a given one."""


def _linear_stage(
    oof: np.ndarray, truth: Truth, cfg: TrainConfig
) -> tuple[LinearOutOfFold, dict[str, Any], float]:
    """The linear stage's temperature, isotonic map and OOS threshold; its figures and the ECE
    of its temperature-scaled confidences."""
    is_bank, n_intents = truth.is_bank, oof.shape[1] - 1
    oos_col = n_intents
    temp = fit_temperature(oof[is_bank], truth.in_scope, oos_col)
    probs_t, p_oos = split_oos(oof, oos_col, temp)
    pred, conf_t = probs_t.argmax(axis=1), probs_t.max(axis=1)
    correct = pred == truth.y_full
    iso = isotonic_map(conf_t[is_bank], correct[is_bank], n_intents, cfg)
    threshold = pick_oos_threshold(p_oos[is_bank], cfg.max_in_scope_false_alarm)
    conf_cf = cross_fitted(conf_t[is_bank], correct[is_bank], n_intents, cfg)
    linear = LinearOutOfFold(Calibration(temp, iso, threshold), apply_isotonic(probs_t, *iso), p_oos, conf_cf)
    figures = {
        "accuracy": float(correct[is_bank].mean()),
        "selective_accuracy_at_80": selective_at_80(pred[is_bank], conf_cf, truth.in_scope),
    }
    return linear, figures, reliability(conf_t[is_bank], correct[is_bank])["ece"]


def evaluate_cv(
    train: Dataset, dev: Dataset, cv: dict[str, Any], cfg: TrainConfig
) -> tuple[dict[str, Any], Calibration, CascadeFit | None]:
    """Calibration, OOS thresholds and the cascade's escalation rule, all fitted on
    out-of-fold rows, and every reported figure.

    Each stage's isotonic map is fitted on the rows that stage answers; the reported ECE uses
    2-fold cross-fitting of those maps so the figure is not fitted on itself."""
    labels: list[str] = cv["labels"]
    intents = labels[: labels.index(OOS_LABEL)]
    truth = Truth.of(train, intents)
    is_bank = truth.is_bank
    linear, linear_figures, ece_temperature_only = _linear_stage(cv["oof"], truth, cfg)
    stages: dict[str, Any] = {"linear_only": linear_figures}
    probs, flagged, conf_cf = linear.probs, linear.p_oos >= linear.calibration.oos_threshold, linear.conf_cf
    cascade: CascadeFit | None = None
    scores: CascadeScores | None = None
    if "head_oof" in cv:
        cascade, scores = fit_cascade(cv, cfg, linear, truth, stages)
        probs, flagged, conf_cf = scores.probs, scores.flagged, scores.conf_cf
    pred_labels = np.asarray(intents)[probs.argmax(axis=1)]
    bank_report = classification_report(
        truth.labels[is_bank], pred_labels[is_bank], conf_cf, flagged[is_bank]
    )
    bank_report["calibration_temperature_only"] = {"ece": ece_temperature_only}
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
    dev_flag = _dev_flags(cv, cfg, linear.calibration, cascade, len(dev))
    groups = np.asarray([g.split(":")[0] for g in dev.groups])
    for g in DEV_GROUPS:
        m = groups == g
        if m.any():
            metrics[f"{g}_oos"] = oos_metrics(np.ones(m.sum(), bool), dev_flag(None)[m])
    metrics["oos_operating_points"] = _operating_points(scores, linear.p_oos, is_bank, groups, dev_flag)
    return metrics, linear.calibration, cascade


def _operating_points(
    scores: CascadeScores | None, p_oos: np.ndarray, is_bank: np.ndarray, groups: np.ndarray,
    dev_flag: DevFlags,
) -> list[dict[str, float]]:
    """Trade-off table so an operator can pick another threshold without retraining."""
    points = []
    for fa in FALSE_ALARM_BUDGETS:
        t, flags = _flags_at(scores, p_oos, is_bank, fa)
        row = {"max_in_scope_false_alarm": fa, "threshold": t}
        row["in_scope_false_alarm"] = float(flags[is_bank].mean())
        row["recall_clinc_train_cv"] = float(flags[~is_bank].mean())
        for g in DEV_GROUPS:
            m = groups == g
            if m.any():
                row[f"recall_{g}"] = float(dev_flag(t)[m].mean())
        points.append(row)
    return points


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
) -> DevFlags:
    """OOS flags of the dev rows (fold-averaged scores) at the fitted or a given threshold."""
    if not n_dev:
        return lambda _t: np.zeros(0, bool)
    oos_col = cv["labels"].index(OOS_LABEL)
    ins, p_oos = split_oos(cv["dev_raw"], oos_col, linear.temperature)
    if cascade is None:
        return lambda t: p_oos >= (linear.oos_threshold if t is None else t)
    escalate = escalation_mask(ins.max(axis=1), p_oos, cascade.escalate_below, cascade.escalate_oos_at)
    blended = second_stage_scores(cv["dev_raw"], cv["head_dev"], cascade.blend, cv.get("votes_dev"), cfg)
    b_oos = split_oos(blended, oos_col, cascade.calibration.temperature)[1]
    return lambda t: escalate & (b_oos >= (cascade.calibration.oos_threshold if t is None else t))

