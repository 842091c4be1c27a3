"""Confidence intervals for a binomial proportion (a wrong-answer rate), defined once.

- Clopper–Pearson, the exact interval: C. J. Clopper and E. S. Pearson, "The use of confidence
  or fiducial limits illustrated in the case of the binomial", Biometrika 26(4):404–413, 1934.
  The upper bound u of k wrong in n at confidence 1 − α solves P(Binomial(n, u) ≤ k) = α; it
  never covers less than its nominal level, whatever n. The live quality guard judges by it.
- Wilson score interval: E. B. Wilson, "Probable inference, the law of succession, and
  statistical inference", JASA 22(158):209–212, 1927. Closed form and less conservative;
  shown beside it for comparison (its coverage can dip below nominal for small n).

`sides=1` gives the one-sided bound at the full confidence (what "at most 1% wrong at 95%
confidence" means); `sides=2` splits α between the two ends. Pure functions, no dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist


class Method(StrEnum):
    clopper_pearson = "clopper_pearson"
    wilson = "wilson"


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


def _check(k: int, n: int, confidence: float, sides: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if sides not in (1, 2):
        raise ValueError(f"sides is 1 or 2, got {sides}")


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_term = n * log_q
    terms = [log_term]
    for i in range(1, k + 1):
        log_term += math.log(n - i + 1) - math.log(i) + log_p - log_q
        terms.append(log_term)
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _solve(target: float, k: int, n: int) -> float:
    """The p with P(Binomial(n, p) <= k) = target (the CDF falls as p grows), by bisection."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if binomial_cdf(k, n, mid) > target:
            low = mid
        else:
            high = mid
    return high


def clopper_pearson(k: int, n: int, confidence: float = 0.95, sides: int = 2) -> Interval:
    """Exact interval for k successes in n trials ([0, 1] with no trials)."""
    _check(k, n, confidence, sides)
    if n == 0:
        return Interval(0.0, 1.0)
    alpha = (1 - confidence) / sides
    upper = 1.0 if k == n else _solve(alpha, k, n)
    # lower: P(Binomial(n, l) >= k) = alpha, i.e. P(Binomial(n, l) <= k - 1) = 1 - alpha
    lower = 0.0 if k == 0 else _solve(1 - alpha, k - 1, n)
    if sides == 1:
        return Interval(0.0, upper)
    return Interval(lower, upper)


def wilson(k: int, n: int, confidence: float = 0.95, sides: int = 2) -> Interval:
    """Wilson score interval for k successes in n trials ([0, 1] with no trials)."""
    _check(k, n, confidence, sides)
    if n == 0:
        return Interval(0.0, 1.0)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / sides)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    lower, upper = max(0.0, centre - half), min(1.0, centre + half)
    return Interval(0.0 if sides == 1 else lower, upper)


def interval(k: int, n: int, confidence: float = 0.95, sides: int = 2,
             method: Method = Method.clopper_pearson) -> Interval:
    return (clopper_pearson if method is Method.clopper_pearson else wilson)(
        k, n, confidence, sides)
