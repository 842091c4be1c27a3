"""The router's metrics: decisions per rule and handler, budget refusals, and each budget's
use in its current period (read from `router_budgets`, the counters every replica shares)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.tables import router_budgets
from pinworks_common.ledger.records import Decision
from pinworks_common.metrics import after_commit, business_unit_label
from pinworks_router.budgets import CALLS, USD, period_start

ROUTING_DECISIONS = Counter(
    "pinworks_routing_decisions_total",
    "Live routing decisions, by the policy rule that matched and the handler chosen.",
    ["rule", "handler"],
)
BUDGET_REFUSALS = Counter(
    "pinworks_router_budget_exhausted_total",
    "Tickets passed over a handler because its budget for the unit was used up.",
    ["business_unit", "handler"],
)
SHADOW_DISAGREEMENTS = Counter(
    "pinworks_router_shadow_decisions_total",
    "Shadow-policy decisions, by whether they agree with the live one.", ["agrees"],
)
BUDGET_USED = Gauge(
    "pinworks_budget_used", "Budget used in the current period (calls or USD, per kind).",
    ["business_unit", "handler", "kind"],
)
BUDGET_LIMIT = Gauge(
    "pinworks_budget_limit", "Budget limit of the current period (calls or USD, per kind).",
    ["business_unit", "handler", "kind"],
)


def observe_decisions(decisions: Iterable[Decision], live_stage: str) -> None:
    """Count newly recorded decisions (live and shadow) once their batch commits."""
    live, shadow = [], []
    for decision in decisions:
        output = decision.output
        if decision.stage == live_stage:
            exhausted = {str(e.get("handler")) for e in output.get("budget_exhausted") or []}
            live.append((str(output.get("rule")), str(output.get("handler")),
                         decision.inputs.get("business_unit"), sorted(exhausted)))
        else:
            shadow.append(bool(output.get("agrees")))

    def observe() -> None:
        for rule, handler, unit, exhausted in live:
            ROUTING_DECISIONS.labels(rule, handler).inc()
            for refused in exhausted:
                BUDGET_REFUSALS.labels(business_unit_label(unit), refused).inc()
        for agrees in shadow:
            SHADOW_DISAGREEMENTS.labels(str(agrees).lower()).inc()

    after_commit(observe)


async def poll_budgets(engine: AsyncEngine) -> None:
    """Set the gauges from this period's rows of every unit, handler and kind."""
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        result = await conn.execute(
            select(router_budgets.c.business_unit, router_budgets.c.handler,
                   router_budgets.c.kind, router_budgets.c.limit_amount, router_budgets.c.used)
            .where(((router_budgets.c.kind == CALLS)
                    & (router_budgets.c.period_start == period_start(CALLS, now)))
                   | ((router_budgets.c.kind == USD)
                      & (router_budgets.c.period_start == period_start(USD, now))))
        )
        rows = result.all()
    for unit, handler, kind, limit, used in rows:
        labels = (business_unit_label(unit), handler, kind)
        BUDGET_USED.labels(*labels).set(float(used))
        BUDGET_LIMIT.labels(*labels).set(float(limit))
