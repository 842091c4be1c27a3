"""Learn-then-Test for a selective wrong-answer rate: which confidence thresholds are certified.

Implements Learn then Test (A. N. Angelopoulos, S. Bates, E. J. Candès, M. I. Jordan, L. Lei,
"Learn then Test: Calibrating predictive algorithms to achieve risk control", 2021,
arXiv:2110.01052) for one family of thresholds h: a ticket is answered automatically when its
confidence is above h. The risk of h is the wrong share of the automatic answers,
r(h) = P(wrong | confidence > h). For each h the null hypothesis H_h: r(h) > α is tested with a
p-value; the thresholds are tested in a fixed sequence from strict (high h) to loose, stopping at
the first one not rejected (LTT's fixed-sequence procedure, which spends no multiplicity on the
number of thresholds). With probability ≥ 1 − δ every rejected threshold has r(h) ≤ α, so the
loosest rejected one is the operating point.

P-values, given the n_h automatic answers of which k_h are wrong (conditionally on n_h those are
n_h independent draws from the automatic tickets, so k_h ~ Binomial(n_h, r(h))):
- `binomial` (default): the exact tail P(Binomial(n_h, α) ≤ k_h), valid for 0/1 losses.
- `hoeffding_bentkus`: LTT's Hoeffding–Bentkus p-value
  min(exp(−n h₁(r̂ ∧ α, α)), e · P(Binomial(n_h, α) ≤ ⌈n_h r̂⌉)), valid for any loss in [0, 1].

Where the sequence starts: a threshold with fewer automatic answers than `min_answers` (the
count at which even a perfect record, none wrong, would be rejected at level δ) cannot be
rejected whatever its risk, and one with barely that many ends the sequence at its first wrong
answer. So the sequence starts at the strictest threshold with `START_FACTOR` times that count;
the stricter ones form a prefix of the strict end (the count only grows as the threshold
loosens) and are passed over, answering nothing. The start depends on the calibration
confidences, not on which answers are wrong; the guarantee keeps its level when the wrong
share does not fall as the threshold loosens from the start (the usual shape for a calibrated
classifier, and the one the synthetic tests draw from).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pinworks_common.stats import binomial_cdf, clopper_pearson


class PValue(StrEnum):
    binomial = "binomial"
    hoeffding_bentkus = "hoeffding_bentkus"


def share(part: int, whole: int) -> float:
    """`part` as a share of `whole`; 0 when there is nothing to share (no tickets, no answers)."""
    return part / whole if whole else 0.0


def _kl_bernoulli(a: float, b: float) -> float:
    """h₁(a, b) of Hoeffding's inequality: the Bernoulli KL divergence KL(a ‖ b)."""
    def part(x: float, y: float) -> float:
        return 0.0 if x == 0 else x * math.log(x / y)
    return part(a, b) + part(1 - a, 1 - b)


def p_value(wrong: int, answered: int, max_rate: float, method: PValue = PValue.binomial) -> float:
    """Evidence against "the wrong share of automatic answers exceeds `max_rate`"."""
    if answered == 0:
        return 1.0
    if method is PValue.binomial:
        return binomial_cdf(wrong, answered, max_rate)
    observed = wrong / answered
    hoeffding = math.exp(-answered * _kl_bernoulli(min(observed, max_rate), max_rate))
    bentkus = math.e * binomial_cdf(math.ceil(answered * observed), answered, max_rate)
    return min(1.0, hoeffding, bentkus)


def min_answers(max_rate: float, delta: float) -> int:
    """The fewest automatic answers, none wrong, whose binomial p-value is at most δ."""
    return max(1, math.ceil(math.log(delta) / math.log1p(-max_rate)))


START_FACTOR = 4


def upper_bound(wrong: int, answered: int, delta: float) -> float:
    """Clopper–Pearson one-sided (1 − δ) upper bound on the wrong share (1.0 with no answers)."""
    return clopper_pearson(wrong, answered, 1 - delta, sides=1).upper


@dataclass(frozen=True)
class Point:
    """One threshold: tickets with confidence above it are answered automatically."""

    threshold: float
    answered: int
    wrong: int
    p_value: float
    tested: bool

    @property
    def wrong_rate(self) -> float:
        return share(self.wrong, self.answered)


@dataclass(frozen=True)
class Certification:
    points: tuple[Point, ...]
    """Every threshold, strict to loose; `tested` marks the ones the sequence reached."""
    chosen: Point | None
    """The loosest certified threshold, or None when not even the strictest one is."""
    max_rate: float
    delta: float


THRESHOLD_GRID = tuple(round(1 - i / 1000, 3) for i in range(1001))
"""Fixed before seeing data: 1.000, 0.999, … 0.000 (strict to loose)."""


def certify(
    confidences: Sequence[float], wrong: Sequence[bool], max_rate: float, delta: float,
    method: PValue = PValue.binomial, grid: Sequence[float] = THRESHOLD_GRID,
) -> Certification:
    """Fixed-sequence test of every threshold of `grid` (strict to loose) at level δ.

    `confidences` and `wrong` describe the tickets the rest of the policy would answer
    automatically; a ticket at or below a threshold goes to a person instead. Thresholds with
    fewer than `START_FACTOR * min_answers` automatic answers are passed over (see the module's docstring)."""
    if len(confidences) != len(wrong):
        raise ValueError("one wrong flag per confidence")
    if list(grid) != sorted(grid, reverse=True):
        raise ValueError("thresholds are tested strict to loose: the grid must be descending")
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    start = START_FACTOR * min_answers(max_rate, delta)

    def steps() -> Iterator[tuple[float, int, int, bool]]:
        cursor = answered = errors = 0
        for threshold in grid:
            while cursor < len(order) and confidences[order[cursor]] > threshold:
                errors += bool(wrong[order[cursor]])
                answered += 1
                cursor += 1
            yield threshold, answered, errors, answered >= start

    points, chosen = fixed_sequence(steps(), max_rate, delta, method)
    return Certification(tuple(points), chosen, max_rate, delta)


def fixed_sequence(steps: Iterable[tuple[float, int, int, bool]], max_rate: float, delta: float,
                   method: PValue = PValue.binomial) -> tuple[list[Point], Point | None]:
    """`steps`: (parameter, automatic answers, wrong ones, whether the sequence may start here),
    strict to loose. Tests from the first step allowed to start, stops at the first not
    rejected; returns every point and the last rejected one."""
    points: list[Point] = []
    chosen: Point | None = None
    testing, started = True, False
    for parameter, answered, errors, may_start in steps:
        started = started or may_start
        tested = testing and started
        p = p_value(errors, answered, max_rate, method) if tested else 1.0
        point = Point(parameter, answered, errors, p, tested)
        points.append(point)
        if tested:
            if p <= delta:
                chosen = point
            else:
                testing = False
    return points, chosen
