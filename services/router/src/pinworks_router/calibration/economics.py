"""Cost per ticket with people in it: handler estimates plus an agent's cost per human ticket.

`PINWORKS_AGENT_COST_USD` (default 1.50) is the one setting: the escalation service charges it
to the business unit when an agent resolves a ticket, and the same figure prices every ticket
an operating point sends to a person. Handler costs are the router's offline estimates of the
first-choice handler (`pinworks_common.pricing`; fallbacks and verifier escalations are not
simulated). Baselines: every ticket to `llm_frontier`, and every ticket to a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pinworks_common.pricing import FRONTIER, Price, estimated_cost, priced_text


@dataclass(frozen=True)
class Baselines:
    all_frontier: Decimal
    all_human: Decimal


def handler_cost(prices: Mapping[str, Price], handler: str, subject: str | None, body: str) -> Decimal:
    """Estimated cost of a model or template handler for one ticket (0 for `human`)."""
    return estimated_cost(prices.get(handler), priced_text(subject, body))


def baselines(prices: Mapping[str, Price], texts: Sequence[tuple[str | None, str]],
              agent_cost: Decimal) -> Baselines:
    """Per-ticket cost of sending every ticket to the frontier model, or to a person."""
    if not texts:
        return Baselines(Decimal(0), agent_cost)
    frontier = sum((handler_cost(prices, FRONTIER, s, b) for s, b in texts), Decimal(0))
    return Baselines(frontier / len(texts), agent_cost)


def cost_per_ticket(automatic_cost: Decimal, automatic: int, tickets: int,
                    agent_cost: Decimal) -> Decimal:
    """Handler estimates of the automatic answers plus an agent for every other ticket."""
    if tickets == 0:
        return Decimal(0)
    return (automatic_cost + (tickets - automatic) * agent_cost) / tickets
