"""The escalation queue's metrics, read from Postgres (shared by every replica): tickets
waiting per business unit and status, the age of the oldest, and those past their SLA."""

from __future__ import annotations

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.tables import escalations
from pinworks_common.metrics import business_unit_label
from pinworks_escalation.queue import CLAIMED, OPEN

QUEUE_DEPTH = Gauge(
    "pinworks_escalation_queue_depth", "Escalated tickets waiting for or held by a person.",
    ["business_unit", "status"],
)
OLDEST_SECONDS = Gauge(
    "pinworks_escalation_oldest_ticket_age_seconds",
    "Age of the oldest ticket waiting for or held by a person.", ["business_unit"],
)
SLA_BREACHED = Gauge(
    "pinworks_escalation_sla_breached_tickets",
    "Waiting or held tickets already past their SLA due time.", ["business_unit"],
)


async def poll_queue(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(
                escalations.c.business_unit, escalations.c.status, func.count(),
                func.extract("epoch", func.now() - func.min(escalations.c.created_at)),
                func.count().filter(escalations.c.sla_due_at < func.now()),
            )
            .where(escalations.c.status.in_([OPEN, CLAIMED]))
            .group_by(escalations.c.business_unit, escalations.c.status)
        )
        rows = result.all()
    depth: dict[tuple[str, str], float] = {}
    oldest: dict[str, float] = {}
    breached: dict[str, float] = {}
    for unit, status, count, age, late in rows:
        label = business_unit_label(unit)
        depth[(label, status)] = depth.get((label, status), 0) + count
        oldest[label] = max(oldest.get(label, 0.0), float(age or 0))
        breached[label] = breached.get(label, 0) + late
    # units whose queue emptied read 0, not their last value
    for unit, status in _known(QUEUE_DEPTH, "business_unit", "status"):
        depth.setdefault((unit, status), 0)
    for (unit, status), count in depth.items():
        QUEUE_DEPTH.labels(unit, status).set(count)
        oldest.setdefault(unit, 0.0)
        breached.setdefault(unit, 0)
    for unit, age in oldest.items():
        OLDEST_SECONDS.labels(unit).set(age)
        SLA_BREACHED.labels(unit).set(breached[unit])


def _known(gauge: Gauge, *names: str) -> set[tuple[str, ...]]:
    return {tuple(sample.labels[name] for name in names)
            for metric in gauge.collect() for sample in metric.samples}
