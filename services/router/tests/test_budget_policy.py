from decimal import Decimal

import pytest

from pinworks_router.policy import PolicyError, parse_policy

RULES = "rules:\n  - name: a\n    handler: kb\n"


def test_budgets_parse_and_a_unit_budget_replaces_the_wildcard() -> None:
    policy = parse_policy(RULES + """\
budgets:
  - {business_unit: "*", handler: llm_frontier, calls_per_day: 100}
  - {business_unit: wealth, handler: llm_frontier, usd_per_month: 12.5}
""")
    wildcard = policy.budgets_for("retail", "llm_frontier")
    assert wildcard is not None and wildcard.calls_per_day == 100
    own = policy.budgets_for("wealth", "llm_frontier")
    assert own is not None and own.usd_per_month == Decimal("12.5") and own.calls_per_day is None
    assert policy.budgets_for("retail", "kb") is None


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ("budgets: {}\n", "line 4: `budgets` must be a list"),
        ("budgets:\n  - {business_unit: retail, handler: kb}\n",
         "line 5: budget #1: budget: Value error, a budget needs calls_per_day and/or usd_per_month"),
        ("budgets:\n  - {business_unit: retail, handler: robot, calls_per_day: 1}\n",
         "line 5: budget #1: handler: Value error, unknown handler 'robot'"),
        ("budgets:\n  - business_unit: retail\n    handler: kb\n    calls_per_day: -1\n",
         "line 7: budget #1: calls_per_day: Input should be greater than or equal to 0"),
        ("budgets:\n  - {business_unit: retail, handler: kb, calls_per_day: 1}\n"
         "  - {business_unit: retail, handler: kb, usd_per_month: 1}\n",
         "line 6: a second budget for business unit 'retail' and handler 'kb'"),
        ("budgets:\n  - {business_unit: retail, handler: kb, calls_per_day: 1, per: week}\n",
         "line 5: budget #1: per: Extra inputs are not permitted"),
    ],
)
def test_malformed_budgets_name_the_line(budgets: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(RULES + budgets, "p.yaml")
    assert message in str(caught.value)
