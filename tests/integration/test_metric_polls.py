"""The gauges read from Postgres: the router's budgets of this period and the escalation
queue's depth, oldest age and SLA breaches, against real rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import escalations, router_budgets
from pinworks_escalation.metrics import poll_queue
from pinworks_router.budgets import CALLS, USD, period_start
from pinworks_router.metrics import poll_budgets
from tests.conftest import Database

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The superuser's: the tests write the rows the polls read."""
    engine = create_engine(migrated_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def as_service(database: Database) -> AsyncIterator[Callable[[str], AsyncEngine]]:
    """An engine connecting as the service's own role (the poll runs in that service)."""
    engines: list[AsyncEngine] = []

    def engine_of(service: str) -> AsyncEngine:
        engines.append(create_engine(database.service_url(service), pool_size=1))
        return engines[-1]

    yield engine_of
    for engine in engines:
        await engine.dispose()


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_budget_gauges_show_this_periods_use(
        engine: AsyncEngine, as_service: Callable[[str], AsyncEngine]) -> None:
    unit = f"budget-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(router_budgets.insert(), [
            {"business_unit": unit, "handler": "llm_frontier", "kind": USD,
             "period_start": period_start(USD, now), "limit_amount": Decimal("50"),
             "used": Decimal("12.5")},
            {"business_unit": unit, "handler": "llm_frontier", "kind": CALLS,
             "period_start": period_start(CALLS, now), "limit_amount": Decimal("100"),
             "used": Decimal("7")},
            # yesterday's counter is not this period's use
            {"business_unit": unit, "handler": "kb", "kind": CALLS,
             "period_start": period_start(CALLS, now - timedelta(days=1)),
             "limit_amount": Decimal("100"), "used": Decimal("99")},
        ])
    await poll_budgets(as_service("router"))
    labels = {"business_unit": unit, "handler": "llm_frontier"}
    assert gauge("pinworks_budget_used", **labels, kind=USD) == 12.5
    assert gauge("pinworks_budget_limit", **labels, kind=USD) == 50
    assert gauge("pinworks_budget_used", **labels, kind=CALLS) == 7
    assert gauge("pinworks_budget_used", business_unit=unit, handler="kb", kind=CALLS) is None


async def test_queue_gauges_follow_the_queue(
        engine: AsyncEngine, as_service: Callable[[str], AsyncEngine]) -> None:
    queue = as_service("escalation")
    unit = f"queue-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)

    def row(n: int, status: str, age: timedelta, due_in: timedelta) -> dict[str, object]:
        return {"ticket_id": f"{unit}-{n}", "business_unit": unit, "status": status,
                "priority": 1, "source_stage": "router", "reasons": [], "context": {},
                "created_at": now - age, "sla_due_at": now + due_in}

    async with engine.begin() as conn:
        await conn.execute(escalations.insert(), [
            row(1, "open", timedelta(hours=2), -timedelta(minutes=30)),  # past its SLA
            row(2, "open", timedelta(minutes=5), timedelta(hours=1)),
            row(3, "claimed", timedelta(minutes=1), timedelta(hours=1)),
            row(4, "resolved", timedelta(days=2), -timedelta(days=1)),  # done: not counted
        ])
    await poll_queue(queue)
    assert gauge("pinworks_escalation_queue_depth", business_unit=unit, status="open") == 2
    assert gauge("pinworks_escalation_queue_depth", business_unit=unit, status="claimed") == 1
    assert gauge("pinworks_escalation_sla_breached_tickets", business_unit=unit) == 1
    oldest = gauge("pinworks_escalation_oldest_ticket_age_seconds", business_unit=unit)
    assert oldest is not None and 7190 < oldest < 7300
    async with engine.begin() as conn:
        await conn.execute(escalations.update().where(
            escalations.c.business_unit == unit).values(status="resolved"))
    await poll_queue(queue)
    assert gauge("pinworks_escalation_queue_depth", business_unit=unit, status="open") == 0
    assert gauge("pinworks_escalation_sla_breached_tickets", business_unit=unit) == 0
    assert gauge("pinworks_escalation_oldest_ticket_age_seconds", business_unit=unit) == 0
