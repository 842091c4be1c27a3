"""Binomial intervals against published reference values and their defining equations."""

from __future__ import annotations

import random

import pytest

from pinworks_common.stats import Method, binomial_cdf, clopper_pearson, interval, wilson


def test_clopper_pearson_matches_the_beta_quantiles() -> None:
    # scipy.stats.beta.ppf(0.025, 3, 98) and beta.ppf(0.975, 4, 97)
    bounds = clopper_pearson(3, 100, 0.95)
    assert bounds.lower == pytest.approx(0.0062299715, rel=1e-6)
    assert bounds.upper == pytest.approx(0.0851760530, rel=1e-6)


def test_one_sided_upper_bound_of_a_clean_record_is_the_rule_of_three() -> None:
    # none wrong in n: the 95% upper bound solves (1 - u)^n = 0.05, about 3/n
    bound = clopper_pearson(0, 30, 0.95, sides=1)
    assert bound.upper == pytest.approx(1 - 0.05 ** (1 / 30), rel=1e-9)
    assert bound.lower == 0.0


def test_the_upper_bound_solves_its_defining_equation() -> None:
    for k, n in ((1, 10), (5, 200), (40, 1000)):
        upper = clopper_pearson(k, n, 0.9, sides=1).upper
        assert binomial_cdf(k, n, upper) == pytest.approx(0.1, abs=1e-9)


def test_wilson_matches_the_textbook_interval() -> None:
    bounds = wilson(3, 100, 0.95)
    assert bounds.lower == pytest.approx(0.010255, abs=1e-6)
    assert bounds.upper == pytest.approx(0.084519, abs=1e-6)


def test_no_evidence_bounds_nothing_and_all_wrong_reaches_one() -> None:
    assert clopper_pearson(0, 0) == wilson(0, 0)
    assert clopper_pearson(0, 0).upper == 1.0
    assert clopper_pearson(7, 7, sides=1).upper == 1.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        clopper_pearson(5, 3)
    with pytest.raises(ValueError):
        wilson(1, 3, confidence=1.0)
    with pytest.raises(ValueError):
        interval(1, 3, sides=3)


def test_clopper_pearson_covers_at_least_its_level() -> None:
    """Simulated: the one-sided 90% upper bound is above the true rate in >= 90% of draws."""
    rng = random.Random(17)
    rate, n, draws = 0.03, 150, 2000
    covered = sum(
        clopper_pearson(sum(rng.random() < rate for _ in range(n)), n, 0.9, sides=1).upper
        >= rate for _ in range(draws))
    assert covered / draws >= 0.9


def test_interval_picks_the_method() -> None:
    assert interval(3, 100, method=Method.wilson) == wilson(3, 100)
    assert interval(3, 100) == clopper_pearson(3, 100)
