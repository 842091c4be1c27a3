"""The cascade's second stage, fitted on out-of-fold rows: which rows the linear stage sends
on, the blend of both stages (and the neighbours' vote), its confidence model and calibration,
and the figures that show what escalating buys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pinworks_classifier.model.artifact import ConfidenceModel
from pinworks_classifier.model.core import (
    NeighbourVotes,
    blend_scores,
    confidence_features,
    escalation_mask,
    set_top,
    split_oos,
    with_votes,
)
from pinworks_classifier.model.data import OOS_LABEL

from .calibration import Calibration, CascadeFit, CascadeScores, Truth, cross_fitted, selective_at_80
from .config import TrainConfig
from .estimators import (
    fit_confidence,
    fit_isotonic,
    fit_temperature,
    isotonic_map,
    out_of_fold_confidence,
    pick_oos_threshold,
)

SHARES_REPORTED = (0.1, 0.2, 0.3, 0.4, 0.5, 1.0)


@dataclass
class LinearOutOfFold:
    """The linear stage's calibrated out-of-fold results on every training row."""

    calibration: Calibration
    probs: np.ndarray  # in-scope probabilities after the isotonic map
    p_oos: np.ndarray
    conf_cf: np.ndarray  # cross-fitted confidences of the in-scope rows


@dataclass
class Escalation:
    """The rows the linear stage sends on, by its temperature-scaled confidence."""

    linear_probs: np.ndarray  # in-scope probabilities, temperature only
    linear_conf: np.ndarray
    below: float
    rows: np.ndarray


@dataclass
class Blended:
    """The second stage's out-of-fold scores on every row, at its fitted temperature."""

    on: np.ndarray  # the rows it is calibrated on: the escalated in-scope rows
    temperature: float
    probs: np.ndarray  # in-scope probabilities, temperature only
    oos: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    correct: np.ndarray


def escalate_below(in_scope_conf: np.ndarray, share: float) -> float:
    """The confidence under which `share` of the in-scope rows fall (every row: 2.0)."""
    share = min(max(share, 0.0), 1.0)
    return 2.0 if share >= 1.0 else float(np.quantile(in_scope_conf, share))


def blend_statistics(
    oof: np.ndarray, head_oof: np.ndarray, is_bank: np.ndarray, weight: float
) -> dict[str, float]:
    """Means and spreads that put both stages' scores on one scale, and the head's share."""
    return {
        "linear_mean": float(oof[is_bank].mean()),
        "linear_std": float(oof[is_bank].std() or 1.0),
        "head_mean": float(head_oof[is_bank].mean()),
        "head_std": float(head_oof[is_bank].std() or 1.0),
        "head_weight": weight,
    }


def _escalation(
    cv: dict[str, Any], cfg: TrainConfig, linear: LinearOutOfFold, is_bank: np.ndarray
) -> Escalation:
    oos_col = cv["labels"].index(OOS_LABEL)
    linear_probs, _ = split_oos(cv["oof"], oos_col, linear.calibration.temperature)
    linear_conf = linear_probs.max(axis=1)  # temperature-scaled: no isotonic plateaus to tie tickets
    below = escalate_below(linear_conf[is_bank], cfg.escalate_share)
    rows = escalation_mask(linear_conf, linear.p_oos, below, linear.calibration.oos_threshold)
    return Escalation(linear_probs, linear_conf, below, rows)


def second_stage_scores(
    raw: np.ndarray, head_logp: np.ndarray, blend: dict[str, float], votes: NeighbourVotes | None,
    cfg: TrainConfig,
) -> np.ndarray:  # fmt: skip
    """Both stages' scores blended, plus the neighbours' vote when the training kept a memory."""
    blended = blend_scores(raw, head_logp, blend)
    if votes is None:
        return blended
    return with_votes(blended, votes, cfg.neighbours_weight, cfg.neighbours_floor)


def _blended(
    cv: dict[str, Any], cfg: TrainConfig, blend: dict[str, float], on: np.ndarray, y_full: np.ndarray
) -> Blended:
    oos_col = cv["labels"].index(OOS_LABEL)
    blended = second_stage_scores(cv["oof"], cv["head_oof"], blend, cv.get("votes_oof"), cfg)
    temperature = fit_temperature(blended[on], y_full[on], oos_col)
    probs, oos = split_oos(blended, oos_col, temperature)
    pred = probs.argmax(axis=1)
    return Blended(on, temperature, probs, oos, pred, probs.max(axis=1), pred == y_full)


def _stage_confidence(
    cv: dict[str, Any], blended: Blended, escalation: Escalation, p_oos: np.ndarray
) -> tuple[np.ndarray, ConfidenceModel | None]:
    """What the second stage's isotonic map reads: with neighbours, the confidence model's
    probability (out of fold on the rows it is fitted on); else the top probability."""
    votes = cv.get("votes_oof")
    if votes is None:
        return blended.conf, None
    oos_col = cv["labels"].index(OOS_LABEL)
    features = confidence_features(
        blended.probs, blended.oos, escalation.linear_probs, p_oos, cv["head_oof"], oos_col, votes
    )
    on, correct = blended.on, blended.correct
    model = fit_confidence(features[on], correct[on])
    stage_conf = model.probability(features)
    stage_conf[on] = out_of_fold_confidence(features[on], correct[on], cv["folds"][on])
    return stage_conf, model


def _cascade_confidence(
    second_stage: np.ndarray, blended: Blended, escalated_bank: np.ndarray, linear: LinearOutOfFold,
    truth: Truth, cfg: TrainConfig,
) -> np.ndarray:  # fmt: skip
    """In-scope rows' reported confidence: the linear stage's, cross-fitted, and for the
    escalated rows the second stage's `second_stage` score, cross-fitted the same way."""
    on, n_intents = blended.on, blended.probs.shape[1]
    fitted = np.zeros(len(second_stage))
    fitted[on] = cross_fitted(second_stage[on], blended.correct[on], n_intents, cfg)
    out = linear.conf_cf.copy()
    out[escalated_bank] = fitted[truth.is_bank][escalated_bank]
    return out


def _blend_everywhere(blended: Blended, truth: Truth, cfg: TrainConfig) -> dict[str, float]:
    """The second stage answering every row, for comparison."""
    is_bank = truth.is_bank
    conf = blended.conf[is_bank]
    if cfg.isotonic:
        conf = np.interp(conf, *fit_isotonic(conf, blended.correct[is_bank], blended.probs.shape[1]))
    return {
        "accuracy": float(blended.correct[is_bank].mean()),
        "selective_accuracy_at_80": selective_at_80(blended.pred[is_bank], conf, truth.in_scope),
    }


def _accuracy_by_share(
    escalation: Escalation, linear: LinearOutOfFold, blended: Blended, truth: Truth
) -> list[dict[str, float]]:
    """The cascade's accuracy had another share of the in-scope rows been escalated."""
    is_bank, linear_pred = truth.is_bank, linear.probs.argmax(axis=1)
    rows = []
    for share in SHARES_REPORTED:
        cut = escalate_below(escalation.linear_conf[is_bank], share)
        escalated = escalation_mask(
            escalation.linear_conf, linear.p_oos, cut, linear.calibration.oos_threshold
        )
        pred = np.where(escalated, blended.pred, linear_pred)[is_bank]
        rows.append({"escalate_share": share, "below_confidence": cut,
                     "accuracy": float(np.mean(pred == truth.in_scope))})  # fmt: skip
    return rows


def fit_cascade(
    cv: dict[str, Any], cfg: TrainConfig, linear: LinearOutOfFold, truth: Truth, stages: dict[str, Any]
) -> tuple[CascadeFit, CascadeScores]:
    """Escalation rule, blend, neighbour vote and second-stage calibration; the cascade's
    final scores. Its figures are added to `stages`."""
    is_bank, n_intents = truth.is_bank, linear.probs.shape[1]
    blend = blend_statistics(cv["oof"], cv["head_oof"], is_bank, cfg.head_weight)
    escalation = _escalation(cv, cfg, linear, is_bank)
    on = escalation.rows & is_bank
    blended = _blended(cv, cfg, blend, on if on.any() else is_bank, truth.y_full)
    on = blended.on
    stage_conf, confidence_model = _stage_confidence(cv, blended, escalation, linear.p_oos)
    iso = isotonic_map(stage_conf[on], blended.correct[on], n_intents, cfg)
    n_in = int(is_bank.sum())
    threshold = pick_oos_threshold(blended.oos[on], cfg.max_in_scope_false_alarm, population=n_in)
    escalate = escalation.rows
    final = linear.probs.copy()
    mapped = np.interp(stage_conf, *iso) if cfg.isotonic else stage_conf
    final[escalate] = set_top(blended.probs[escalate], mapped[escalate])
    flagged = escalate & (blended.oos >= threshold)
    escalated_bank = escalate[is_bank]
    conf_cf = _cascade_confidence(stage_conf, blended, escalated_bank, linear, truth, cfg)
    final_pred = final[is_bank].argmax(axis=1)
    stages["blend_everywhere"] = _blend_everywhere(blended, truth, cfg)
    stages["cascade"] = {
        "accuracy": float(np.mean(final_pred == truth.in_scope)),
        "selective_accuracy_at_80": selective_at_80(final_pred, conf_cf, truth.in_scope),
        "escalated_share_in_scope": float(escalated_bank.mean()),
        "accuracy_by_escalated_share": _accuracy_by_share(escalation, linear, blended, truth),
    }
    if confidence_model is not None:
        top_probability = _cascade_confidence(blended.conf, blended, escalated_bank, linear, truth, cfg)
        stages["cascade"]["selective_accuracy_at_80_top_probability"] = selective_at_80(
            final_pred, top_probability, truth.in_scope
        )
    calibration = Calibration(blended.temperature, iso, threshold)
    fit = CascadeFit(blend, escalation.below, linear.calibration.oos_threshold, calibration, confidence_model)
    return fit, CascadeScores(escalate, final, flagged, conf_cf, blended.oos)
