"""Offline comparison of two policies on the same classified tickets, without I/O.

For every ticket both policies decide; a decision *changes* when the first-choice handler
differs. Projected cost per business unit is the estimated cost of each policy's first-choice
handler (`pinworks_common.pricing`; `human` is not metered, fallbacks are not simulated), beside
the baseline of sending every ticket to `llm_frontier`. The classifier's own cost is the same
under every policy and is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pinworks_common.pricing import FRONTIER, Price, estimated_cost, priced_text
from pinworks_contracts.messages import Classification, TicketSubmission
from pinworks_router.domain import route
from pinworks_router.policy import Policy

SCENARIOS = ("current", "new", "all_frontier")


@dataclass
class UnitCost:
    tickets: int = 0
    current: Decimal = Decimal(0)
    new: Decimal = Decimal(0)
    all_frontier: Decimal = Decimal(0)


@dataclass
class Simulation:
    current_version: str
    new_version: str
    tickets: int = 0
    changed: int = 0
    rule_changed: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    handlers: dict[str, Counter[str]] = field(
        default_factory=lambda: {"current": Counter(), "new": Counter()})
    costs: dict[str, UnitCost] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)

    def total(self) -> UnitCost:
        out = UnitCost()
        for unit in self.costs.values():
            out.tickets += unit.tickets
            out.current += unit.current
            out.new += unit.new
            out.all_frontier += unit.all_frontier
        return out

    def as_dict(self) -> dict[str, object]:
        def money(cost: UnitCost) -> dict[str, object]:
            return {"tickets": cost.tickets, "current_usd": str(cost.current),
                    "new_usd": str(cost.new), "all_frontier_usd": str(cost.all_frontier)}
        return {
            "current_policy": self.current_version, "new_policy": self.new_version,
            "tickets": self.tickets, "changed": self.changed, "rule_changed": self.rule_changed,
            "transitions": [{"from": a, "to": b, "tickets": n}
                            for (a, b), n in sorted(self.transitions.items(),
                                                    key=lambda kv: (-kv[1], kv[0]))],
            "handlers": {k: dict(sorted(v.items())) for k, v in self.handlers.items()},
            "cost_by_business_unit": {u: money(c) for u, c in sorted(self.costs.items())},
            "cost_total": money(self.total()),
            "examples": self.examples,
        }


def simulate(
    current: Policy, new: Policy, tickets: Sequence[TicketSubmission],
    classifications: Sequence[Classification], prices: dict[str, Price], max_examples: int = 10,
) -> Simulation:
    if len(tickets) != len(classifications):
        raise ValueError("one classification per ticket")
    result = Simulation(current.version, new.version)
    frontier = prices.get(FRONTIER)
    for ticket, cls in zip(tickets, classifications, strict=True):
        before = route(current, ticket, cls).decision
        after = route(new, ticket, cls).decision
        text = priced_text(ticket.subject, ticket.body)
        unit = result.costs.setdefault(ticket.business_unit, UnitCost())
        unit.tickets += 1
        unit.current += estimated_cost(prices.get(before.handler), text)
        unit.new += estimated_cost(prices.get(after.handler), text)
        unit.all_frontier += estimated_cost(frontier, text)
        result.tickets += 1
        result.handlers["current"][before.handler] += 1
        result.handlers["new"][after.handler] += 1
        if before.rule != after.rule:
            result.rule_changed += 1
        if before.handler != after.handler:
            result.changed += 1
            result.transitions[(before.handler, after.handler)] += 1
            if len(result.examples) < max_examples:
                result.examples.append({
                    "ticket_id": ticket.ticket_id, "intent": cls.intent,
                    "from": f"{before.handler} ({before.rule})",
                    "to": f"{after.handler} ({after.rule})",
                })
    return result
