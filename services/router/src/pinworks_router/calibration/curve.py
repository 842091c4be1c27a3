"""The risk–coverage curve and the figures of an operating point, on the calibration set."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pinworks_router.calibration.cells import Routed
from pinworks_router.calibration.economics import Charges, cost_per_ticket
from pinworks_router.calibration.ltt import share, upper_bound


@dataclass(frozen=True)
class Figures:
    """What an operating point does to the calibration tickets."""

    tickets: int
    automatic: int
    wrong: int
    in_scope: int
    in_scope_automatic: int
    out_of_scope: int
    out_of_scope_automatic: int
    cost_per_ticket: Decimal

    @property
    def wrong_rate(self) -> float:
        """Wrong share of automatic answers."""
        return share(self.wrong, self.automatic)

    @property
    def coverage(self) -> float:
        """Share of in-scope tickets answered automatically."""
        return share(self.in_scope_automatic, self.in_scope)

    @property
    def out_of_scope_rate(self) -> float:
        """Share of out-of-scope tickets answered automatically."""
        return share(self.out_of_scope_automatic, self.out_of_scope)

    def as_dict(self) -> dict[str, object]:
        return {
            "tickets": self.tickets, "automatic": self.automatic, "wrong": self.wrong,
            "wrong_rate": round(self.wrong_rate, 6), "in_scope_coverage": round(self.coverage, 6),
            "out_of_scope_automatic_rate": round(self.out_of_scope_rate, 6),
            "cost_per_ticket_usd": str(round(self.cost_per_ticket, 6)),
        }


def figures(routed: Iterable[Routed], automatic: Iterable[bool], charges: Charges) -> Figures:
    """Counts and cost when `automatic` says which of `routed` are answered automatically."""
    tickets = answered = wrong = in_scope = in_auto = oos = oos_auto = 0
    spent = Decimal(0)
    for ticket, auto in zip(routed, automatic, strict=True):
        tickets += 1
        in_scope += ticket.item.in_scope
        oos += not ticket.item.in_scope
        if auto:
            answered += 1
            spent += ticket.cost
            wrong += ticket.item.intent_wrong
            in_auto += ticket.item.in_scope
            oos_auto += not ticket.item.in_scope
    return Figures(tickets, answered, wrong, in_scope, in_auto, oos, oos_auto,
                   cost_per_ticket(spent, answered, tickets, charges))


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    figures: Figures
    upper_bound: float
    """One-sided Clopper–Pearson bound on the wrong share, at the calibration's level."""


CURVE_THRESHOLDS = (0.0, 0.25, 0.5, 0.55, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96,
                    0.97, 0.98, 0.99, 0.995)


def curve(routed: Sequence[Routed], delta: float, charges: Charges,
          thresholds: Iterable[float] = CURVE_THRESHOLDS) -> list[CurvePoint]:
    """One threshold for every intent, on top of the policy's own routing: the trade-off."""
    points = []
    for threshold in sorted(set(thresholds)):
        at = figures(routed, (r.automatic and r.confidence > threshold for r in routed), charges)
        points.append(CurvePoint(threshold, at, upper_bound(at.wrong, at.automatic, delta)))
    return points
