"""Cost per ticket with people in it, priced as the cost ledger charges a ticket.

What `pinworks report costs` sums from the ledger, calibration prices per ticket (`Charges`):
- the classifier's charge on every ticket (`CLASSIFIER_COST_USD`, default 0.00002; the
  classifier charges it on every ticket it accepts);
- the first-choice handler's estimate for every automatic answer (`pinworks_common.pricing`,
  the specialists' price table; fallbacks and verifier escalations are not simulated);
- an agent for every ticket an operating point sends to a person (`PINWORKS_AGENT_COST_USD`,
  default 1.50; the escalation service charges it when an agent resolves the ticket).
The verifier charges nothing (its checks are local models), so there is nothing of it to price.
Baselines: every ticket to `llm_frontier`, and every ticket to a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pinworks_common.pricing import (
    FRONTIER,
    Price,
    agent_cost_usd,
    classifier_cost_usd,
    estimated_cost,
    priced_text,
)


@dataclass(frozen=True)
class Charges:
    """What a ticket is charged besides its handler."""

    agent: Decimal
    """Each ticket a person handles (`PINWORKS_AGENT_COST_USD`)."""
    classifier: Decimal
    """Each ticket (`CLASSIFIER_COST_USD`)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Charges:
        return cls(agent_cost_usd(environ), classifier_cost_usd(environ))


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
                    charges: Charges) -> Decimal:
    """The classifier on every ticket, handler estimates of the automatic answers and an agent
    for every other ticket, per ticket."""
    if tickets == 0:
        return Decimal(0)
    return (automatic_cost + (tickets - automatic) * charges.agent) / tickets + charges.classifier
