"""The wrong-answer rate of automatic answers per scope, and when a scope must be tightened.

A scope is a business unit or a policy intent group. Its evidence is the automatic answers an
agent has judged since the scope was last loosened: those the random quality sample put in the
agents' review queue and they marked right or wrong, plus every automatic answer an agent
corrected elsewhere (sent back or resolved with another intent). Corrections are all wrong and
enter the count outside the random sample, so they can only raise the estimate: the guard errs
towards tightening, never towards answering more.

The bound is the one-sided Clopper–Pearson upper bound at the budget's confidence
(`pinworks_common.stats`). A scope is judged once it has `min_reviews` judged answers; with
fewer, its bound says little and the scope is left as it is. A judged scope whose upper bound
passes its budget is tightened: its tickets go to people until an operator loosens it
(`pinworks quality loosen`), which restarts its evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pinworks_common.stats import Method, clopper_pearson, interval


class ScopeKind(StrEnum):
    business_unit = "business_unit"
    intent_group = "intent_group"


class ScopeState(StrEnum):
    ok = "ok"
    tightened = "tightened"


@dataclass(frozen=True)
class Limit:
    max_wrong_rate: float
    confidence: float


@dataclass(frozen=True)
class Budgets:
    """The policy's error budget as the guard reads it: a global limit, per-unit and per-group
    overrides (only tighter), and the intents of each policy intent group."""

    default: Limit
    business_units: Mapping[str, Limit] = field(default_factory=dict)
    intent_groups: Mapping[str, Limit] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def limit(self, kind: ScopeKind, name: str) -> Limit:
        own = self.business_units if kind is ScopeKind.business_unit else self.intent_groups
        return own.get(name, self.default)


@dataclass(frozen=True)
class Judged:
    """One judged automatic answer: its unit, the intent automation answered, and the verdict."""

    business_unit: str
    intent: str | None
    wrong: bool


@dataclass(frozen=True)
class Tally:
    reviewed: int = 0
    wrong: int = 0


@dataclass(frozen=True)
class Estimate:
    kind: ScopeKind
    name: str
    reviewed: int
    wrong: int
    rate: float
    lower: float
    """Two-sided Wilson lower bound at the budget's confidence (shown, not acted on)."""
    upper: float
    """One-sided Clopper–Pearson upper bound at the budget's confidence (acted on)."""
    max_wrong_rate: float
    confidence: float

    @property
    def over_budget(self) -> bool:
        return self.upper > self.max_wrong_rate

    def summary(self) -> str:
        return (f"{self.kind.value} {self.name}: {self.wrong} wrong of {self.reviewed} judged "
                f"automatic answers ({self.rate:.1%}); {self.confidence:.0%} upper bound "
                f"{self.upper:.2%} vs budget {self.max_wrong_rate:.2%}")


def estimate(kind: ScopeKind, name: str, tally: Tally, limit: Limit) -> Estimate:
    rate = tally.wrong / tally.reviewed if tally.reviewed else 0.0
    upper = clopper_pearson(tally.wrong, tally.reviewed, limit.confidence, sides=1).upper
    lower = interval(tally.wrong, tally.reviewed, limit.confidence, 2, Method.wilson).lower
    return Estimate(kind, name, tally.reviewed, tally.wrong, rate, lower, upper,
                    limit.max_wrong_rate, limit.confidence)


def scope_keys(item: Judged, groups: Mapping[str, frozenset[str]]
               ) -> list[tuple[ScopeKind, str]]:
    """The scopes a judged answer counts in: its unit, and every group of its intent."""
    return [(ScopeKind.business_unit, item.business_unit),
            *((ScopeKind.intent_group, group) for group, intents in sorted(groups.items())
              if item.intent in intents)]


def tallies(judged: Iterable[Judged], groups: Mapping[str, frozenset[str]]
            ) -> dict[tuple[ScopeKind, str], Tally]:
    """Per business unit and per intent group."""
    counts: dict[tuple[ScopeKind, str], list[int]] = {}
    for item in judged:
        for key in scope_keys(item, groups):
            count = counts.setdefault(key, [0, 0])
            count[0] += 1
            count[1] += int(item.wrong)
    return {key: Tally(n, k) for key, (n, k) in counts.items()}


@dataclass(frozen=True)
class Verdict:
    estimate: Estimate
    judged: bool
    """Enough evidence (`min_reviews`) to act on."""
    tighten: bool
    """The scope is not tightened yet and must be now."""


def decide(estimate_: Estimate, state: ScopeState, min_reviews: int) -> Verdict:
    """Tighten a judged scope whose upper bound passes its budget; never loosen (an operator
    does that explicitly)."""
    judged = estimate_.reviewed >= min_reviews
    tighten = judged and estimate_.over_budget and state is ScopeState.ok
    return Verdict(estimate_, judged, tighten)


def tightening_reason(estimate_: Estimate) -> str:
    return f"quality guard tightened {estimate_.summary()}; its tickets go to people"
