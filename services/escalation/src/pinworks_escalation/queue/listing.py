"""Reading the queue: search, filters, orders and pages, scoped to an agent's business units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import escalations
from pinworks_escalation.queue.items import (
    CLAIMED,
    OPEN,
    RESOLVED,
    RETURNED,
    QueueError,
    QueueItem,
    item_from_row,
)

QUEUE_ORDER = (escalations.c.priority.desc(), escalations.c.sla_due_at, escalations.c.created_at)
"""Most urgent first: the order claims take."""

SORTS: dict[str, tuple[Any, ...]] = {
    "priority": (*QUEUE_ORDER, escalations.c.ticket_id),
    "sla": (escalations.c.sla_due_at, escalations.c.priority.desc(), escalations.c.created_at,
            escalations.c.ticket_id),
    "newest": (escalations.c.created_at.desc(), escalations.c.ticket_id.desc()),
    "oldest": (escalations.c.created_at, escalations.c.ticket_id),
}
"""Queue orders by name: most urgent first (the claim order), SLA due soonest, newest, oldest.
Each ends on the ticket id, so pages neither repeat nor skip a ticket."""
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "active": (OPEN, CLAIMED), "open": (OPEN,), "claimed": (CLAIMED,),
    "resolved": (RESOLVED,), "returned": (RETURNED,), "all": (OPEN, CLAIMED, RESOLVED, RETURNED),
}


def claimable(now: datetime) -> Any:
    """Open, or claimed with a lease that has run out."""
    return or_(
        escalations.c.status == OPEN,
        and_(escalations.c.status == CLAIMED, escalations.c.lease_expires_at < now),
    )


def scoped(query: Any, business_units: Sequence[str] | None) -> Any:
    """`query` limited to the business units (None: all of them)."""
    if business_units is not None:
        query = query.where(escalations.c.business_unit.in_(list(business_units)))
    return query


@dataclass(frozen=True)
class QueueQuery:
    """What an agent asks of the queue: search text, filters, order and page."""

    search: str | None = None
    status: str = "active"
    intent: str | None = None
    business_unit: str | None = None
    min_priority: int | None = None
    sort: str = "priority"
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise QueueError(f"unknown sort {self.sort!r}; one of {', '.join(SORTS)}")
        if self.status not in STATUS_FILTERS:
            raise QueueError(f"unknown status {self.status!r}; one of {', '.join(STATUS_FILTERS)}")
        if not 1 <= self.limit <= 500 or self.offset < 0:
            raise QueueError("a page holds 1-500 tickets and starts at offset 0 or later")


def like_pattern(search: str) -> str:
    """A case-insensitive LIKE pattern matching `search` literally anywhere."""
    return "%" + search.strip().replace("\\", "\\\\").replace(
        "%", "\\%").replace("_", "\\_") + "%"


TRIGRAM = 3
"""A search this long or longer is answered through the index `escalations_search_trigrams`
(migrations 0015, 0016): the rows whose searched fields hold every three-byte piece of its
lower-cased UTF-8 (each an int4 code), then the ILIKE below on those alone. A shorter one reads
every row of the status filter."""


def _indexed(search: str) -> Any:
    """Rows whose searched fields hold every trigram code of `search`: what the GIN index
    answers, a superset of the ILIKE's matches (the expression is the index's, column for
    column)."""
    trigrams = ARRAY(Integer)
    return func.pinworks_escalation_trigrams(
        escalations.c.ticket_id, escalations.c.context, type_=trigrams,
    ).contains(func.pinworks_trigrams(search, type_=trigrams))


def _searched(query: Any, wanted: QueueQuery) -> Any:
    query = query.where(escalations.c.status.in_(STATUS_FILTERS[wanted.status]))
    ticket = escalations.c.context["envelope"]["ticket"]
    if wanted.search and wanted.search.strip():
        needle = like_pattern(wanted.search)
        if len(wanted.search.strip()) >= TRIGRAM:
            query = query.where(_indexed(wanted.search.strip()))
        query = query.where(or_(
            escalations.c.ticket_id.ilike(needle),
            ticket["subject"].astext.ilike(needle),
            ticket["body"].astext.ilike(needle),
            ticket["customer_id"].astext.ilike(needle),
        ))
    if wanted.intent:
        query = query.where(
            escalations.c.context["envelope"]["classification"]["intent"].astext == wanted.intent)
    if wanted.business_unit:
        query = query.where(escalations.c.business_unit == wanted.business_unit)
    if wanted.min_priority is not None:
        query = query.where(escalations.c.priority >= wanted.min_priority)
    return query


async def list_queue(
    conn: AsyncConnection,
    *,
    business_units: Sequence[str] | None = None,
    include_resolved: bool = False,
    limit: int = 100,
    query: QueueQuery | None = None,
) -> list[QueueItem]:
    """One page of the queue; without `query`, the open and claimed tickets, most urgent first."""
    wanted = query or QueueQuery(status="all" if include_resolved else "active", limit=limit)
    rows = await conn.execute(page_statement(wanted, business_units))
    return [item_from_row(row) for row in rows]


def page_statement(query: QueueQuery, business_units: Sequence[str] | None) -> Any:
    """The SELECT of one page of `query` (what `list_queue` runs)."""
    statement = _searched(select(escalations), query).order_by(*SORTS[query.sort])
    return scoped(statement.limit(query.limit).offset(query.offset), business_units)


async def count_queue(
    conn: AsyncConnection, query: QueueQuery, *, business_units: Sequence[str] | None = None
) -> int:
    """How many tickets match `query` across all pages."""
    statement = _searched(select(func.count()).select_from(escalations), query)
    return int((await conn.execute(scoped(statement, business_units))).scalar_one())


async def get_item(
    conn: AsyncConnection, ticket_id: str, *, business_units: Sequence[str] | None = None
) -> QueueItem | None:
    """The ticket, or None when it is not queued (or not in one of `business_units`)."""
    query = select(escalations).where(escalations.c.ticket_id == ticket_id)
    row = (await conn.execute(scoped(query, business_units))).first()
    return item_from_row(row) if row else None


async def pending_count(conn: AsyncConnection, business_units: Sequence[str] | None = None) -> int:
    query = select(func.count()).select_from(escalations).where(
        escalations.c.status.in_([OPEN, CLAIMED]))
    return int((await conn.execute(scoped(query, business_units))).scalar_one())
