"""Budgets per business unit and handler, enforced atomically across router replicas.

One router batch makes two statements on `router_budgets`, inside the batch's transaction:

1. an upsert of every counter the batch could touch (this period's row, limit from the policy)
   that locks those rows in key order and returns what is used, as of the latest commit;
2. one UPDATE adding what this batch consumed, guarded by `used + delta <= limit`.

Between them, tickets are allotted in batch order: a handler whose budget cannot take one more
call (or its estimated dollars) is passed over for the next handler in the rule's fallback
chain; `human` is the end of every chain and is never refused, so no ticket waits forever.
Another replica's batch on the same counters waits for our commit, then sees our usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import router_budgets
from pinworks_common.pricing import Price, estimated_cost, priced_text
from pinworks_contracts.messages import RouteDecision, TicketSubmission
from pinworks_router.policy import Budget, Policy

HUMAN = "human"
CALLS, USD = "calls_per_day", "usd_per_month"

Key = tuple[str, str, str, date]  # business_unit, handler, kind, period_start


@dataclass
class Counter:
    limit: Decimal
    used: Decimal
    delta: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.used - self.delta


@dataclass
class Allotment:
    """The handler a ticket goes to after budgets, and the budget state the audit records."""

    decision: RouteDecision
    budget: list[dict[str, object]] = field(default_factory=list)
    exhausted: list[dict[str, object]] = field(default_factory=list)


def _shown(kind: str, value: Decimal) -> str:
    return str(int(value)) if kind == CALLS else str(value.quantize(Decimal("0.000001")))


def period_start(kind: str, now: datetime) -> date:
    day = now.date()
    return day if kind == CALLS else day.replace(day=1)


def _limits(budget: Budget) -> list[tuple[str, Decimal]]:
    out = []
    if budget.calls_per_day is not None:
        out.append((CALLS, Decimal(budget.calls_per_day)))
    if budget.usd_per_month is not None:
        out.append((USD, budget.usd_per_month))
    return out


def _chain(decision: RouteDecision) -> list[str]:
    chain = [decision.handler, *decision.fallbacks]
    return chain if chain[-1] == HUMAN else [*chain, HUMAN]


async def allot(
    conn: AsyncConnection, policy: Policy, items: Sequence[tuple[TicketSubmission, RouteDecision]],
    prices: dict[str, Price], now: datetime,
) -> list[Allotment]:
    """Apply the policy's budgets to the batch's decisions, in order; charge what is taken."""
    wanted = _wanted_limits(policy, items, now)
    if not wanted:
        return [Allotment(decision) for _, decision in items]
    counters = await _locked_counters(conn, wanted)
    allotments = []
    for ticket, decision in items:
        allotment = _allot_one(ticket, decision, policy, prices, counters, now)
        if allotment is not None:
            allotments.append(allotment)
    await _charge(conn, counters)
    return allotments


def _wanted_limits(
    policy: Policy, items: Sequence[tuple[TicketSubmission, RouteDecision]], now: datetime
) -> dict[Key, Decimal]:
    """The limit of every budget counter the batch's chains may draw on."""
    wanted: dict[Key, Decimal] = {}
    for ticket, decision in items:
        for handler in _chain(decision):
            budget = policy.budgets_for(ticket.business_unit, handler)
            for kind, limit in _limits(budget) if budget else []:
                wanted[(ticket.business_unit, handler, kind, period_start(kind, now))] = limit
    return wanted


async def _locked_counters(conn: AsyncConnection, wanted: dict[Key, Decimal]) -> dict[Key, Counter]:
    """Upsert the counters with the policy's limits; the rows stay locked until the commit."""
    keys = sorted(wanted)
    rows = (await conn.execute(
        insert(router_budgets)
        .values([{"business_unit": k[0], "handler": k[1], "kind": k[2], "period_start": k[3],
                  "limit_amount": wanted[k]} for k in keys])
        .on_conflict_do_update(
            index_elements=["business_unit", "handler", "kind", "period_start"],
            set_={"limit_amount": insert(router_budgets).excluded.limit_amount,
                  "updated_at": func.now()})
        .returning(router_budgets.c.business_unit, router_budgets.c.handler,
                   router_budgets.c.kind, router_budgets.c.period_start,
                   router_budgets.c.limit_amount, router_budgets.c.used)
    )).all()
    return {(r.business_unit, r.handler, r.kind, r.period_start):
            Counter(Decimal(r.limit_amount), Decimal(r.used)) for r in rows}


def _allot_one(
    ticket: TicketSubmission, decision: RouteDecision, policy: Policy, prices: dict[str, Price],
    counters: dict[Key, Counter], now: datetime,
) -> Allotment | None:
    """The first handler of the ticket's chain whose budgets have room (a person always has);
    its costs are added to the counters' deltas."""
    chain = _chain(decision)
    text = priced_text(ticket.subject, ticket.body)
    exhausted: list[dict[str, object]] = []
    for position, handler in enumerate(chain):
        budget = policy.budgets_for(ticket.business_unit, handler)
        needs = {
            (ticket.business_unit, handler, kind, period_start(kind, now)):
                Decimal(1) if kind == CALLS else estimated_cost(prices.get(handler), text)
            for kind, _ in (_limits(budget) if budget else [])
        }
        short = [(key, amount) for key, amount in needs.items() if counters[key].remaining < amount]
        if short and handler != HUMAN:
            exhausted.extend(_exhausted(handler, key, counters[key], amount) for key, amount in short)
            continue
        state = _taken(handler, needs, counters, charge=not short)
        if position == 0:
            return Allotment(decision, state, exhausted)
        passed = "; ".join(f"{e['handler']} {e['budget']} exhausted "
                           f"({e['used']}/{e['limit']})" for e in exhausted)
        rerouted = decision.model_copy(update={
            "handler": handler,
            "fallbacks": chain[position + 1:] if handler != HUMAN else [],
            "reason": f"{decision.reason}; budget: {passed}; took fallback {handler}",
        })
        return Allotment(rerouted, state, exhausted)
    return None


def _exhausted(handler: str, key: Key, counter: Counter, amount: Decimal) -> dict[str, object]:
    return {"handler": handler, "business_unit": key[0], "budget": key[2],
            "period": key[3].isoformat(), "limit": _shown(key[2], counter.limit),
            "used": _shown(key[2], counter.used + counter.delta), "needed": _shown(key[2], amount)}


def _taken(
    handler: str, needs: dict[Key, Decimal], counters: dict[Key, Counter], charge: bool
) -> list[dict[str, object]]:
    """The budgets' state once `handler` takes the ticket (charged unless `charge` is false)."""
    state: list[dict[str, object]] = []
    for key, amount in needs.items():
        counter = counters[key]
        if charge:
            counter.delta += amount
        state.append({"handler": handler, "business_unit": key[0], "budget": key[2],
                      "period": key[3].isoformat(), "limit": _shown(key[2], counter.limit),
                      "used": _shown(key[2], counter.used + counter.delta)})
    return state


async def _charge(conn: AsyncConnection, counters: dict[Key, Counter]) -> None:
    charged = [(key, c.delta) for key, c in sorted(counters.items()) if c.delta]
    if charged:
        result = await conn.execute(CHARGE, {
            "units": [k[0] for k, _ in charged], "handlers": [k[1] for k, _ in charged],
            "kinds": [k[2] for k, _ in charged], "periods": [k[3] for k, _ in charged],
            "deltas": [d for _, d in charged]})
        if len(result.all()) != len(charged):
            raise RuntimeError("budget counters moved under a held lock; refusing the batch")


CHARGE = text("""
    UPDATE router_budgets AS b SET used = b.used + v.delta, updated_at = now()
    FROM unnest(CAST(:units AS text[]), CAST(:handlers AS text[]), CAST(:kinds AS text[]),
                CAST(:periods AS date[]), CAST(:deltas AS numeric[]))
         AS v(business_unit, handler, kind, period_start, delta)
    WHERE b.business_unit = v.business_unit AND b.handler = v.handler AND b.kind = v.kind
      AND b.period_start = v.period_start AND b.used + v.delta <= b.limit_amount
    RETURNING b.business_unit
""")
"""One statement charges every counter the batch used, never past its limit."""
