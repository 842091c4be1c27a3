"""Learn-then-Test: exact p-values, and the guarantee on synthetic data with a known risk."""

from __future__ import annotations

import math
import random

import pytest

from pinworks_router.calibration.ltt import (
    PValue,
    binomial_cdf,
    certify,
    p_value,
    upper_bound,
)


def test_binomial_cdf_matches_the_sum_of_the_mass_function() -> None:
    for n, p in ((1, 0.3), (17, 0.01), (200, 0.05), (60, 0.9)):
        for k in range(n + 1):
            exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
            assert binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    assert binomial_cdf(-1, 5, 0.5) == 0.0
    assert binomial_cdf(3, 10, 0.0) == 1.0


def test_hoeffding_bentkus_is_never_below_the_exact_binomial_tail() -> None:
    for answered, wrong in ((300, 0), (1000, 4), (1000, 20), (5000, 30)):
        exact = p_value(wrong, answered, 0.01, PValue.binomial)
        assert p_value(wrong, answered, 0.01, PValue.hoeffding_bentkus) >= exact * (1 - 1e-12)


def test_upper_bound_is_the_clopper_pearson_bound() -> None:
    bound = upper_bound(3, 1000, 0.05)
    assert binomial_cdf(3, 1000, bound) == pytest.approx(0.05, rel=1e-6)
    assert upper_bound(0, 0, 0.05) == 1.0
    # no errors in 299 answers: the "rule of three" bound, just above 1%
    assert upper_bound(0, 299, 0.05) == pytest.approx(1 - 0.05 ** (1 / 299), rel=1e-6)


def _draw(rng: random.Random, n: int, wrong_at: float) -> tuple[list[float], list[bool]]:
    """Confidence uniform on [0, 1]; P(wrong | c) = wrong_at * (1 - c), so the true wrong share
    above threshold h is wrong_at * (1 - h) / 2."""
    confidences = [rng.random() for _ in range(n)]
    return confidences, [rng.random() < wrong_at * (1 - c) for c in confidences]


@pytest.mark.parametrize("method", list(PValue))
def test_the_chosen_threshold_honours_the_budget_in_all_but_delta_of_draws(method: PValue) -> None:
    rng = random.Random(17)
    budget, delta, draws, wrong_at = 0.01, 0.1, 120, 0.05
    violations, chosen = 0, []
    for _ in range(draws):
        result = certify(*_draw(rng, 10_000, wrong_at), budget, delta, method)
        if result.chosen is None:
            continue
        true_risk = wrong_at * (1 - result.chosen.threshold) / 2
        violations += true_risk > budget
        chosen.append(result.chosen.threshold)
    # at most delta of the draws exceed the budget, within three standard errors
    assert violations / draws <= delta + 3 * math.sqrt(delta * (1 - delta) / draws)
    # and the procedure is not trivially strict: nearly every draw certifies a threshold, and
    # on average one not far from h = 0.6, where the budget is met exactly
    assert len(chosen) >= 0.8 * draws
    assert 0.6 <= sum(chosen) / len(chosen) < 0.8


def test_when_every_threshold_is_over_budget_it_almost_never_chooses_one() -> None:
    rng = random.Random(3)
    delta, draws = 0.1, 120
    chose = 0
    for _ in range(draws):
        confidences = [rng.random() for _ in range(5000)]
        wrong = [rng.random() < 0.012 for _ in confidences]  # 1.2% everywhere, budget 1%
        chose += certify(confidences, wrong, 0.01, delta).chosen is not None
    assert chose / draws <= delta + 3 * math.sqrt(delta * (1 - delta) / draws)


def test_it_refuses_when_nothing_can_be_certified() -> None:
    assert certify([], [], 0.01, 0.05).chosen is None
    assert certify([0.99] * 1000, [False] * 1000, 0.01, 0.05).chosen is None  # too few
    result = certify([0.9, 0.8, 0.7] * 1000, [True, False, False] * 1000, 0.01, 0.05)
    assert result.chosen is None
    assert [p.answered for p in result.points if p.tested] == [2000]  # the first fails: the end


def test_the_sequence_stops_at_the_first_threshold_not_rejected() -> None:
    confidences = [0.95] * 2000 + [0.5] * 1000
    wrong = [False] * 2000 + [True] * 100 + [False] * 900
    result = certify(confidences, wrong, 0.01, 0.05)
    assert result.chosen is not None
    assert result.chosen.threshold == 0.5  # 0.95 is answered above 0.5, but 0.5 itself is not
    assert result.chosen.answered == 2000 and result.chosen.wrong == 0
    failed = [p for p in result.points if p.tested and p.p_value > 0.05]
    assert [(p.threshold, p.answered, p.wrong) for p in failed] == [(0.499, 3000, 100)]
    assert not any(p.tested for p in result.points if p.threshold < 0.499)


def test_the_grid_must_go_from_strict_to_loose() -> None:
    with pytest.raises(ValueError, match="strict to loose"):
        certify([0.5], [False], 0.01, 0.05, grid=[0.1, 0.9])
