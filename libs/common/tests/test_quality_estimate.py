"""The live estimate and the tightening decision, as pure functions."""

from __future__ import annotations

import pytest

from pinworks_common.quality.estimate import (
    Budgets,
    Judged,
    Limit,
    ScopeKind,
    ScopeState,
    Tally,
    decide,
    estimate,
    tallies,
    tightening_reason,
)
from pinworks_common.stats import clopper_pearson

BUDGETS = Budgets(default=Limit(0.05, 0.95),
                  business_units={"retail": Limit(0.01, 0.99)},
                  intent_groups={"security": Limit(0.02, 0.95)},
                  groups={"security": frozenset({"lost_card", "fraud"}),
                          "cards": frozenset({"lost_card", "card_limit"})})


def test_tallies_count_each_answer_in_its_unit_and_every_group_of_its_intent() -> None:
    judged = [Judged("retail", "lost_card", True), Judged("retail", "card_limit", False),
              Judged("wealth", "fraud", False), Judged("wealth", None, True)]
    counts = tallies(judged, BUDGETS.groups)
    assert counts[(ScopeKind.business_unit, "retail")] == Tally(2, 1)
    assert counts[(ScopeKind.business_unit, "wealth")] == Tally(2, 1)
    assert counts[(ScopeKind.intent_group, "security")] == Tally(2, 1)
    assert counts[(ScopeKind.intent_group, "cards")] == Tally(2, 1)
    assert len(counts) == 4


def test_a_scope_has_its_own_limit_or_the_policys() -> None:
    assert BUDGETS.limit(ScopeKind.business_unit, "retail") == Limit(0.01, 0.99)
    assert BUDGETS.limit(ScopeKind.business_unit, "wealth") == Limit(0.05, 0.95)
    assert BUDGETS.limit(ScopeKind.intent_group, "security") == Limit(0.02, 0.95)
    assert BUDGETS.limit(ScopeKind.intent_group, "cards") == Limit(0.05, 0.95)


def test_the_estimate_uses_the_one_sided_upper_bound_at_the_budgets_confidence() -> None:
    found = estimate(ScopeKind.business_unit, "wealth", Tally(200, 4), Limit(0.05, 0.95))
    assert found.rate == pytest.approx(0.02)
    assert found.upper == clopper_pearson(4, 200, 0.95, sides=1).upper
    assert found.lower < found.rate < found.upper
    assert not found.over_budget  # 2% observed, bound ~4.5% < 5%


def test_a_judged_scope_over_budget_is_tightened() -> None:
    found = estimate(ScopeKind.business_unit, "wealth", Tally(40, 6), Limit(0.05, 0.95))
    verdict = decide(found, ScopeState.ok, min_reviews=20)
    assert verdict.judged and verdict.tighten
    assert "upper bound" in tightening_reason(found) and "wealth" in tightening_reason(found)


def test_too_few_judged_answers_decide_nothing() -> None:
    found = estimate(ScopeKind.business_unit, "wealth", Tally(5, 5), Limit(0.05, 0.95))
    assert found.over_budget
    verdict = decide(found, ScopeState.ok, min_reviews=20)
    assert not verdict.judged and not verdict.tighten


def test_a_scope_within_budget_stays_and_a_tightened_one_is_never_loosened() -> None:
    clean = estimate(ScopeKind.business_unit, "wealth", Tally(400, 2), Limit(0.05, 0.95))
    assert not decide(clean, ScopeState.ok, 20).tighten
    # the guard never loosens: an operator does (`pinworks quality loosen`)
    still = decide(clean, ScopeState.tightened, 20)
    assert not still.tighten and still.judged


def test_an_already_tightened_scope_is_not_tightened_again() -> None:
    bad = estimate(ScopeKind.intent_group, "security", Tally(40, 10), Limit(0.02, 0.95))
    assert not decide(bad, ScopeState.tightened, 20).tighten
