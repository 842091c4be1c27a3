"""What `pinworks report costs` computes: the ledger per group, the people in it, and baselines.

"Compound" is the system pinworks is: a team of components (classifier, template, small models,
frontier LLM with retrieval, verifier, people) each ticket passes through; its cost is what
that team actually charged. An "entry" is one charge in the cost ledger (one component's work
on one ticket), so a ticket usually has several.

Compound cost is the sum of `cost_ledger.amount_usd` for entries created in [since, until),
grouped by the entry's business unit (or component, or UTC day): it is the ledger, to the cent.
It already holds the people who resolved tickets: the escalation service charges
`PINWORKS_AGENT_COST_USD` (`pinworks_common.pricing`) to the unit, as the ledger component
`agent`, when an agent resolves one. The people figures come from the audit (`outcomes`):
- by people: tickets a person resolved (an outcome resolved by someone other than automation),
  plus tickets waiting for one: their latest outcome before `until` is `escalated`, or an agent
  reopened the ticket (`reopen` in `accountability`) after its latest outcome, an automatic
  answer that missed, and nothing answered it again before `until`;
- awaiting: those waiting. No agent has been charged for them yet, so each is priced at
  `PINWORKS_AGENT_COST_USD` now; "with people" is compound plus that estimate, and cost per
  ticket is "with people" over tickets.
Baselines, per ticket with a ledger entry in the window: all-frontier is what one
`llm_frontier` call would have cost on the ticket's text (the token estimate of
`pinworks_common.pricing`, prices from `SPECIALISTS_PRICES` or the default table; no people),
all-human is `PINWORKS_AGENT_COST_USD` per ticket. `pinworks policy calibrate` prints the same
two baselines per ticket for its calibration set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from pinworks_common.pricing import Price

CENT = Decimal("0.000001")
REOPEN_ACTION = "reopen"
"""The accountability action of an agent putting an automatically answered ticket back in the
queue (`pinworks_escalation.queue.reopen`): the ticket waits for a person from then on."""
CHUNK = 5000

GroupBy = StrEnum("GroupBy", ["business_unit", "component", "day"])
"""What `--by` groups the cost report by (each value is its member's name)."""


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT))


@dataclass(frozen=True)
class People:
    """The people in a group's tickets (None in a row grouped by component)."""

    tickets: int
    """Tickets a person resolved or that wait for one."""
    awaiting: int
    """Tickets waiting for a person: no agent charged yet."""
    charged_usd: Decimal
    """What the ledger charged for agents (component `agent`)."""
    awaiting_usd: Decimal
    """`PINWORKS_AGENT_COST_USD` for each ticket waiting."""
    all_human_usd: Decimal
    """`PINWORKS_AGENT_COST_USD` for every ticket of the group."""


@dataclass(frozen=True)
class CostRow:
    group: str
    tickets: int
    entries: int
    compound_usd: Decimal
    frontier_baseline_usd: Decimal | None
    people: People | None = field(default=None)

    @property
    def with_people_usd(self) -> Decimal:
        """The ledger plus the agents the waiting tickets will cost."""
        return self.compound_usd + (self.people.awaiting_usd if self.people else Decimal(0))

    def per_ticket(self, amount: Decimal | None) -> Decimal | None:
        if amount is None or self.people is None or not self.tickets:
            return None
        return (amount / self.tickets).quantize(CENT)

    def as_dict(self, by: str) -> dict[str, object]:
        baseline, people = self.frontier_baseline_usd, self.people
        out: dict[str, object] = {
            by: self.group, "tickets": self.tickets, "entries": self.entries,
            "compound_usd": str(self.compound_usd), "people_tickets": None,
            "awaiting_people": None, "people_usd": None, "with_people_usd": None,
            "cost_per_ticket_usd": None, "frontier_baseline_usd": _usd(baseline),
            "frontier_per_ticket_usd": None, "all_human_baseline_usd": None,
            "all_human_per_ticket_usd": None,
            "saving_usd": None if baseline is None else str(baseline - self.with_people_usd),
        }
        if people is not None:
            out.update(
                people_tickets=people.tickets, awaiting_people=people.awaiting,
                people_usd=_usd(people.charged_usd + people.awaiting_usd),
                with_people_usd=_usd(self.with_people_usd),
                cost_per_ticket_usd=_usd(self.per_ticket(self.with_people_usd)),
                frontier_per_ticket_usd=_usd(self.per_ticket(baseline)),
                all_human_baseline_usd=_usd(people.all_human_usd),
                all_human_per_ticket_usd=_usd(self.per_ticket(people.all_human_usd)))
        return out


@dataclass
class _Group:
    tickets: set[str] = field(default_factory=set)
    entries: int = 0
    usd: Decimal = Decimal(0)
    agent_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Audit:
    """Per ticket: its all-frontier estimate, and whether people handled it or it waits."""

    frontier: dict[str, Decimal]
    by_people: set[str]
    awaiting: set[str]
    agent_cost: Decimal

    def row(self, name: str, group: _Group, by: GroupBy) -> CostRow:
        ids = group.tickets
        if by is GroupBy.component:  # a component is part of a ticket; the rest is per ticket
            return CostRow(name, len(ids), group.entries, group.usd.quantize(CENT), None)
        awaiting = len(ids & self.awaiting)
        people = People(len(ids & (self.by_people | self.awaiting)), awaiting,
                        group.agent_usd, awaiting * self.agent_cost, len(ids) * self.agent_cost)
        return CostRow(name, len(ids), group.entries, group.usd.quantize(CENT),
                       sum((self.frontier.get(tid, Decimal(0)) for tid in ids), Decimal(0)),
                       people)


async def cost_report(
    conn: AsyncConnection, *, by: GroupBy, since: datetime, until: datetime | None = None,
    business_units: list[str] | None = None, prices: dict[str, Price] | None = None,
    include_bench: bool = False, agent_cost: Decimal | None = None,
) -> list[CostRow]:
    """One row per group, highest compound cost first, then a `TOTAL` row."""
    from pinworks_common.pricing import FRONTIER, agent_cost_usd, load_prices

    prices = load_prices() if prices is None else prices
    rows = await _ledger_rows(conn, by, since, until, business_units, include_bench)
    groups: dict[str, _Group] = {}
    everyone = _Group()
    for row in rows:
        for group in (groups.setdefault(row.grp, _Group()), everyone):
            group.tickets.add(row.ticket_id)
            group.entries += int(row.n)
            group.usd += Decimal(row.usd)
            group.agent_usd += Decimal(row.agent_usd)
    ids = everyone.tickets
    by_people, awaiting = await _people(conn, ids, until)
    audit = _Audit(await _frontier_baselines(conn, ids, prices.get(FRONTIER)), by_people,
                   awaiting, agent_cost_usd() if agent_cost is None else agent_cost)
    report = [audit.row(name, group, by) for name, group in groups.items()]
    report.sort(key=lambda r: (-r.compound_usd, r.group))
    report.append(audit.row("TOTAL", everyone, by))
    return report


async def _ledger_rows(conn: AsyncConnection, by: GroupBy, since: datetime,
                       until: datetime | None, business_units: list[str] | None,
                       include_bench: bool) -> list[Any]:
    """Per group and ticket: entries, their sum and what of it paid agents."""
    from sqlalchemy import cast, func, select
    from sqlalchemy.types import Date

    from pinworks_common.db.tables import cost_ledger
    from pinworks_common.pricing import AGENT_COMPONENT
    from pinworks_common.synthetic import BENCH_UNIT_PREFIX

    where = [cost_ledger.c.created_at >= since]
    if not include_bench:  # the bench's synthetic tickets are not real spend
        where.append(cost_ledger.c.business_unit.not_like(f"{BENCH_UNIT_PREFIX}%"))
    if until is not None:
        where.append(cost_ledger.c.created_at < until)
    if business_units:
        where.append(cost_ledger.c.business_unit.in_(business_units))
    key = {
        GroupBy.business_unit: cost_ledger.c.business_unit,
        GroupBy.component: cost_ledger.c.component,
        GroupBy.day: func.to_char(cast(func.timezone("UTC", cost_ledger.c.created_at), Date),
                                  "YYYY-MM-DD"),
    }[by]
    agent = func.coalesce(func.sum(cost_ledger.c.amount_usd).filter(
        cost_ledger.c.component == AGENT_COMPONENT), 0)
    return list((await conn.execute(
        select(key.label("grp"), cost_ledger.c.ticket_id, func.count().label("n"),
               func.sum(cost_ledger.c.amount_usd).label("usd"), agent.label("agent_usd"))
        .where(*where).group_by(key, cost_ledger.c.ticket_id)
    )).all())


def _chunks(ticket_ids: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(ticket_ids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


async def _people(conn: AsyncConnection, ticket_ids: set[str], until: datetime | None
                  ) -> tuple[set[str], set[str]]:
    """From the audit: the tickets a person resolved, and those waiting for one before `until`
    (their latest outcome escalated them, or an agent reopened them since it)."""
    from sqlalchemy import func, select

    from pinworks_common.db.tables import accountability, outcomes
    from pinworks_common.quality.store import AUTOMATION
    from pinworks_contracts.subjects import OutcomeStatus

    by_people: set[str] = set()
    latest: dict[str, tuple[str, datetime]] = {}
    reopened: dict[str, datetime] = {}
    for chunk in _chunks(ticket_ids):
        query = (select(outcomes.c.ticket_id, outcomes.c.status, outcomes.c.created_at,
                        outcomes.c.payload["resolved_by"].astext.label("resolved_by"))
                 .where(outcomes.c.ticket_id.in_(chunk)).order_by(outcomes.c.id))
        reopens = (select(accountability.c.ticket_id,
                          func.max(accountability.c.created_at).label("at"))
                   .where(accountability.c.ticket_id.in_(chunk),
                          accountability.c.action == REOPEN_ACTION)
                   .group_by(accountability.c.ticket_id))
        if until is not None:
            query = query.where(outcomes.c.created_at < until)
            reopens = reopens.where(accountability.c.created_at < until)
        for row in (await conn.execute(query)).all():
            latest[row.ticket_id] = (row.status, row.created_at)
            if row.status == OutcomeStatus.RESOLVED and row.resolved_by != AUTOMATION:
                by_people.add(row.ticket_id)
        reopened.update((row.ticket_id, row.at) for row in (await conn.execute(reopens)).all())
    awaiting = {tid for tid, (status, at) in latest.items()
                if status == OutcomeStatus.ESCALATED or reopened.get(tid, at) > at}
    return by_people, awaiting


async def _frontier_baselines(conn: AsyncConnection, ticket_ids: set[str],
                              frontier: Price | None) -> dict[str, Decimal]:
    """What one frontier call would have cost on each ticket's text, to the cent."""
    from sqlalchemy import select

    from pinworks_common.db.tables import tickets
    from pinworks_common.pricing import estimated_cost, priced_text

    texts: dict[str, str] = {}
    for chunk in _chunks(ticket_ids):
        for t in (await conn.execute(
            select(tickets.c.ticket_id, tickets.c.subject, tickets.c.body)
            .where(tickets.c.ticket_id.in_(chunk))
        )).all():
            texts[t.ticket_id] = priced_text(t.subject, t.body)
    return {tid: estimated_cost(frontier, text).quantize(CENT) for tid, text in texts.items()}
