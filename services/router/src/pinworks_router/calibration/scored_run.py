"""The scored method end to end: certify both directions, derive the gates, and the figures.

The shipped gates come from the shipped direction (learn `a`, test `b`, `scored`). The figures
that describe it honestly are on tickets the chosen λ was not fitted on: its test part, the
swap's test part, and the two together (cross-fitted: every ticket scored by a model fitted on
the other part and a λ certified there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pinworks_router.calibration.cells import Routed
from pinworks_router.calibration.curve import Figures, figures
from pinworks_router.calibration.economics import Charges
from pinworks_router.calibration.ltt import PValue, upper_bound
from pinworks_router.calibration.scored import (
    FamilyCertificate,
    automatic_under,
    certify_family,
    cross_fit,
    in_part,
    other,
    split,
)
from pinworks_router.policy import ErrorBudget, PolicyError

CURVE_STEP = 25
"""Grid points between printed rows of the family's risk–coverage curve."""


@dataclass(frozen=True)
class FamilyCurvePoint:
    index: int
    max_wrong: float
    figures: Figures
    upper_bound: float
    tested: bool


@dataclass(frozen=True)
class FamilyRun:
    shipped: FamilyCertificate
    swapped: FamilyCertificate
    units: dict[str, FamilyCertificate]
    thresholds: dict[str, float]
    """The shipped gate of every intent the calibration set knows."""
    unit_thresholds: dict[str, dict[str, float]]
    test: Figures
    """The shipped direction on its test part (every ticket of it, automatic or not)."""
    swapped_test: Figures
    cross_fitted: Figures
    cross_fitted_by_source: dict[str, Figures]
    curve: list[FamilyCurvePoint]
    """The shipped direction's family on its test part, strict to loose."""


def _test_figures(cert: FamilyCertificate, routed: Sequence[Routed],
                  charges: Charges) -> tuple[list[Routed], list[bool], Figures]:
    test = in_part(routed, other(cert.learn))
    automatic = automatic_under(cert, test)
    return test, automatic, figures(test, automatic, charges)


def _curve(cert: FamilyCertificate, routed: Sequence[Routed], charges: Charges) -> list[FamilyCurvePoint]:
    test = in_part(routed, other(cert.learn))
    first = cert.start if cert.start is not None else 0
    indices = {k for k in range(first % CURVE_STEP, len(cert.points), CURVE_STEP)}
    indices |= {cert.chosen.index} if cert.chosen else set()
    out = []
    for k in sorted(indices):
        point = cert.points[k]
        at = figures(test, automatic_under(cert, test, k), charges)
        out.append(FamilyCurvePoint(k, point.max_wrong, at,
                                    upper_bound(at.wrong, at.automatic, cert.delta), point.tested))
    return out


def run_family(budget: ErrorBudget, routed: Sequence[Routed], intents: Sequence[str],
               unit_routed: Mapping[str, Sequence[Routed]], charges: Charges,
               method: PValue = PValue.binomial,
               swap_routed: Sequence[Routed] | None = None) -> FamilyRun:
    """Both directions at the policy's budget; a business unit's tighter budget re-tests the
    shipped family on the tickets routed as that unit. `swap_routed`: the tickets as the swap
    sees them, when that differs (a verifier margin chosen on part `b`); default `routed`."""
    if budget.intent_groups:
        raise PolicyError("the scored method certifies one family for the whole policy; an "
                          "intent group's own error budget needs --method cells")
    delta = 1 - budget.confidence
    swap_routed = routed if swap_routed is None else swap_routed
    shipped, swapped = cross_fit(routed, budget.max_wrong_rate, delta, method, swap_routed)
    units, unit_thresholds = {}, {}
    for unit, limit in sorted(budget.business_units.items()):
        parts = split(unit_routed[unit])
        units[unit] = certify_family(parts["a"], parts["b"], limit.max_wrong_rate,
                                     1 - (limit.confidence or budget.confidence), "a",
                                     model=shipped.model, method=method)
        unit_thresholds[unit] = units[unit].thresholds(intents)
    tickets, flags, test = _test_figures(shipped, routed, charges)
    swapped_tickets, swapped_flags, swapped_test = _test_figures(swapped, swap_routed, charges)
    everyone, automatic = tickets + swapped_tickets, flags + swapped_flags
    by_source = {}
    for source in sorted({r.item.source for r in everyone}):
        mine = [(r, a) for r, a in zip(everyone, automatic, strict=True) if r.item.source == source]
        by_source[source] = figures([r for r, _ in mine], [a for _, a in mine], charges)
    return FamilyRun(shipped, swapped, units, shipped.thresholds(intents), unit_thresholds, test,
                     swapped_test, figures(everyone, automatic, charges), by_source,
                     _curve(shipped, routed, charges))
