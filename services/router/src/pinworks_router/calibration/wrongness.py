"""An estimate of P(wrong | intent, confidence), fitted on the learn part of the calibration set.

A logistic model with one offset per predicted intent, shrunk toward the pooled estimate:

    logit P(wrong) = a + b · logit(confidence) + u_intent,   u_intent ~ Normal(0, INTENT_SD²)

fitted by maximum a posteriori (a penalised likelihood: ridge on the offsets, the random-effects
logistic regression of e.g. A. Gelman and J. Hill, "Data analysis using regression and
multilevel/hierarchical models", 2007, ch. 14). An intent with many tickets gets the offset its
own errors call for; one with few is pulled toward 0, the pooled estimate; one the learn part
never saw answered automatically has offset 0. The slope b is kept ≤ 0 (more confident, not more
often wrong), so for each intent the estimate falls as confidence rises and "estimated
wrong-probability ≤ λ" is "confidence above a per-intent threshold h_intent(λ)", which is what a
policy gate (`max_confidence`) can say. The model only orders the tickets; the guarantee comes
from testing its thresholds on tickets it never saw (`scored`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

INTENT_SD = 1.0
"""Prior standard deviation of an intent's log-odds offset from the pooled estimate."""
GLOBAL_SD = 10.0
"""A weak prior on the intercept and slope, so a learn part with no errors still has a fit."""
EDGE = 1e-4
"""Confidences are clipped to [EDGE, 1 − EDGE] before the logit."""
THRESHOLD_STEP = 1000
"""Thresholds are rounded up to 1/THRESHOLD_STEP (conservative: never answers more)."""


def _logit(p: float) -> float:
    p = min(max(p, EDGE), 1 - EDGE)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


@dataclass(frozen=True)
class WrongModel:
    intercept: float
    slope: float
    offsets: dict[str, float]
    """Intents the learn part saw answered automatically; any other intent is pooled (0)."""

    def probability(self, intent: str, confidence: float) -> float:
        return _sigmoid(self.intercept + self.slope * _logit(confidence)
                        + self.offsets.get(intent, 0.0))

    def threshold(self, intent: str, max_wrong: float) -> float:
        """The gate h of `intent` at λ = `max_wrong`: confidence above h means an estimated
        wrong-probability ≤ λ; rounded up to the grid, clamped to [0, 1]."""
        level = self.intercept + self.offsets.get(intent, 0.0)
        if self.slope == 0.0:
            return 0.0 if _sigmoid(level) <= max_wrong else 1.0
        if max_wrong <= 0.0:
            return 1.0
        if max_wrong >= 1.0:
            return 0.0
        exact = _sigmoid((_logit_exact(max_wrong) - level) / self.slope)
        if exact <= EDGE:
            return 0.0
        if exact >= 1 - EDGE:
            return 1.0
        return min(1.0, math.ceil(exact * THRESHOLD_STEP - 1e-9) / THRESHOLD_STEP)


def _logit_exact(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass
class _Sums:
    """Gradient and Hessian of the negative log posterior, in the arrow shape of this model:
    (intercept, slope) couple with every offset, offsets only with themselves."""

    g: list[float]
    h: list[list[float]]
    gu: dict[str, float]
    hu: dict[str, float]
    cu: dict[str, tuple[float, float]]


def _sums(z: Sequence[float], y: Sequence[bool], intents: Sequence[str], a: float, b: float,
          offsets: dict[str, float]) -> _Sums:
    sums = _Sums([-a / GLOBAL_SD**2, -b / GLOBAL_SD**2],
                 [[1 / GLOBAL_SD**2, 0.0], [0.0, 1 / GLOBAL_SD**2]],
                 {i: -u / INTENT_SD**2 for i, u in offsets.items()},
                 dict.fromkeys(offsets, 1 / INTENT_SD**2), dict.fromkeys(offsets, (0.0, 0.0)))
    for zt, yt, intent in zip(z, y, intents, strict=True):
        p = _sigmoid(a + b * zt + offsets[intent])
        w, r = p * (1 - p), yt - p
        sums.g[0] += r
        sums.g[1] += r * zt
        sums.h[0][0] += w
        sums.h[0][1] += w * zt
        sums.h[1][1] += w * zt * zt
        sums.gu[intent] += r
        sums.hu[intent] += w
        ca, cb = sums.cu[intent]
        sums.cu[intent] = (ca + w, cb + w * zt)
    sums.h[1][0] = sums.h[0][1]
    return sums


def _newton_step(s: _Sums, free_slope: bool) -> tuple[float, float, dict[str, float]]:
    """Solve H Δ = g through the Schur complement of the offsets' diagonal block."""
    k = 2 if free_slope else 1
    schur = [[s.h[r][c] for c in range(k)] for r in range(k)]
    rhs = s.g[:k]
    for intent, d in s.hu.items():
        col = s.cu[intent][:k]
        for r in range(k):
            rhs[r] -= col[r] * s.gu[intent] / d
            for c in range(k):
                schur[r][c] -= col[r] * col[c] / d
    if k == 2:
        det = schur[0][0] * schur[1][1] - schur[0][1] * schur[1][0]
        step = [(schur[1][1] * rhs[0] - schur[0][1] * rhs[1]) / det,
                (schur[0][0] * rhs[1] - schur[1][0] * rhs[0]) / det]
    else:
        step = [rhs[0] / schur[0][0], 0.0]
    offsets = {i: (s.gu[i] - sum(s.cu[i][r] * step[r] for r in range(k))) / d
               for i, d in s.hu.items()}
    return step[0], step[1], offsets


MAX_STEP = 5.0
"""Newton steps are capped (in log-odds) so a learn part with no errors cannot overshoot."""


def fit(intents: Sequence[str], confidences: Sequence[float], wrong: Sequence[bool],
        iterations: int = 50, tol: float = 1e-9) -> WrongModel:
    """MAP fit by Newton's method on every parameter at once (the slope held at 0 if the data
    would make it positive)."""
    if not len(intents) == len(confidences) == len(wrong):
        raise ValueError("one intent and one wrong flag per confidence")
    z = [_logit(c) for c in confidences]
    a, b, free_slope = 0.0, 0.0, True
    offsets = dict.fromkeys(intents, 0.0)
    for _ in range(iterations):
        da, db, du = _newton_step(_sums(z, wrong, intents, a, b, offsets), free_slope)
        biggest = max([abs(da), abs(db), *map(abs, du.values())])
        scale = min(1.0, MAX_STEP / biggest) if biggest else 1.0
        a, b = a + scale * da, b + scale * db
        offsets = {i: u + scale * du[i] for i, u in offsets.items()}
        if b > 0:
            b, free_slope = 0.0, False
            continue
        if biggest < tol:
            break
    return WrongModel(a, b, offsets)
