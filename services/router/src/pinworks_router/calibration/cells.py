"""Which tickets share a threshold (a cell), and each cell's certified threshold.

A cell is a set of predicted intents. Routing only knows the prediction, so a ticket belongs to
the cell of the intent the classifier read (an out-of-scope ticket read as `card_arrival` is in
`card_arrival`'s cell, and counts as wrong there).

Per intent where the data supports it, pooled where it does not: an intent gets a cell of its
own only when the calibration set holds at least `min_support` automatic tickets read as it:
twice the count at which the fixed sequence starts testing (`START_FACTOR` times the count at
which even a perfect record could be certified), at the cell's rate and at the level it would
get if every intent had its own cell. Every other intent is pooled: with the other intents of an intent
group that has its own budget, else with every remaining intent. The confidence level is split
evenly over the cells (Bonferroni), so with probability ≥ confidence every cell's threshold
holds at once, and then the whole policy's wrong share of automatic answers is within budget
too (a mixture of shares each within it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pinworks_common.pricing import Price
from pinworks_router.calibration.dataset import CalibrationTicket
from pinworks_router.calibration.economics import handler_cost
from pinworks_router.calibration.ltt import (
    START_FACTOR,
    Certification,
    PValue,
    certify,
    min_answers,
)
from pinworks_router.domain import route
from pinworks_router.policy import ErrorBudget, Policy

POOLED = "pooled"


@dataclass(frozen=True)
class Routed:
    """A calibration ticket as the policy under calibration routes it."""

    item: CalibrationTicket
    handler: str
    """The first-choice handler; `human` means no automatic answer."""
    cost: Decimal
    """The handler's estimated cost (0 for a person; the agent's cost is added by economics)."""

    @property
    def automatic(self) -> bool:
        return self.handler != "human"

    @property
    def confidence(self) -> float:
        return self.item.classification.confidence

    @property
    def intent(self) -> str:
        return self.item.classification.intent

    @property
    def wrong(self) -> bool:
        return self.item.intent_wrong


@dataclass(frozen=True)
class Cell:
    name: str
    """`pooled`, `group:<name>` or `intent:<name>`."""
    intents: frozenset[str]
    max_rate: float
    confidence: float


@dataclass(frozen=True)
class CellCertificate:
    cell: Cell
    delta: float
    """The cell's share of 1 − confidence."""
    certification: Certification

    @property
    def threshold(self) -> float:
        """Confidence at or below which the cell's tickets go to a person (1.0: all of them)."""
        chosen = self.certification.chosen
        return 1.0 if chosen is None else chosen.threshold


def route_all(policy: Policy, items: Sequence[CalibrationTicket],
              prices: Mapping[str, Price]) -> list[Routed]:
    """Each ticket through the router's own rule evaluation (`pinworks_router.domain.route`)."""
    out = []
    for item in items:
        handler = route(policy, item.ticket, item.classification).decision.handler
        out.append(Routed(item, handler, handler_cost(prices, handler, item.ticket.subject,
                                                      item.ticket.body)))
    return out


def min_support(max_rate: float, delta: float) -> int:
    """Twice the automatic answers at which the fixed sequence starts testing (`ltt`)."""
    return 2 * START_FACTOR * min_answers(max_rate, delta)


def _group_limits(budget: ErrorBudget, groups: dict[str, frozenset[str]]
                  ) -> dict[str, tuple[str, float, float]]:
    """Each intent of a group with its own budget: (group, rate, confidence), strictest group."""
    limits: dict[str, tuple[str, float, float]] = {}
    for name, limit in sorted(budget.intent_groups.items()):
        confidence = max(limit.confidence or budget.confidence, budget.confidence)
        for intent in groups.get(name, frozenset()):
            current = limits.get(intent)
            if current is None or limit.max_wrong_rate < current[1]:
                limits[intent] = (name, limit.max_wrong_rate, confidence)
    return limits


def partition(budget: ErrorBudget, groups: dict[str, frozenset[str]], routed: Sequence[Routed],
              intents: Sequence[str]) -> list[Cell]:
    """The cells of every intent in `intents` (the classifier's labels the calibration saw)."""
    counts = Counter(r.intent for r in routed if r.automatic)
    limits = _group_limits(budget, groups)
    worst_cells = len(intents) + len(budget.intent_groups) + 1
    own: list[Cell] = []
    pooled: dict[tuple[str, float, float], set[str]] = {}
    for intent in sorted(intents):
        group, rate, confidence = limits.get(intent, (POOLED, budget.max_wrong_rate,
                                                      budget.confidence))
        if counts[intent] >= min_support(rate, (1 - confidence) / worst_cells):
            own.append(Cell(f"intent:{intent}", frozenset({intent}), rate, confidence))
        else:
            pooled.setdefault((group, rate, confidence), set()).add(intent)
    for (group, rate, confidence), members in sorted(pooled.items()):
        name = POOLED if group == POOLED else f"group:{group}"
        own.append(Cell(name, frozenset(members), rate, confidence))
    return own


def tightened(cells: Sequence[Cell], max_rate: float, confidence: float) -> list[Cell]:
    """The same cells under a business unit's stricter budget."""
    return [Cell(c.name, c.intents, min(c.max_rate, max_rate), max(c.confidence, confidence))
            for c in cells]


def certify_cells(cells: Sequence[Cell], routed: Sequence[Routed],
                  method: PValue = PValue.binomial) -> list[CellCertificate]:
    """Each cell's fixed-sequence test on its automatic tickets, at its share of the level."""
    out = []
    for cell in cells:
        members = [r for r in routed if r.automatic and r.intent in cell.intents]
        delta = (1 - cell.confidence) / len(cells)
        certification = certify([r.confidence for r in members],
                                [r.item.intent_wrong for r in members], cell.max_rate, delta,
                                method)
        out.append(CellCertificate(cell, delta, certification))
    return out
