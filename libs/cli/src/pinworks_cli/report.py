"""`pinworks report costs`: what the compound system cost, beside sending everything to the frontier.

"Compound" is the system pinworks is: a team of components (classifier, template, small models,
frontier LLM with retrieval, verifier, people) each ticket passes through; its cost is what
that team actually charged. An "entry" is one charge in the cost ledger (one component's work
on one ticket), so a ticket usually has several.

Compound cost is the sum of `cost_ledger.amount_usd` for entries created in [since, until),
grouped by the entry's business unit (or component, or UTC day): it is the ledger, to the cent.
The all-frontier baseline is, for every ticket that has a ledger entry in the window, what one
`llm_frontier` call would have cost on that ticket's text (see `pinworks_common.pricing` for the
token estimate; prices from `SPECIALISTS_PRICES` or the documented default table).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pinworks_common.commands.options import parse_when
from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from pinworks_common.pricing import Price

report_app = typer.Typer(help="Reports over the audit and the cost ledger.", no_args_is_help=True)
console = LazyConsole()
CENT = Decimal("0.000001")


GroupBy = StrEnum("GroupBy", ["business_unit", "component", "day"])
"""What `--by` groups the cost report by (each value is its member's name)."""
Format = StrEnum("Format", ["table", "csv", "json"])
"""What `--format` renders the report as."""


@dataclass(frozen=True)
class CostRow:
    group: str
    tickets: int
    entries: int
    compound_usd: Decimal
    frontier_baseline_usd: Decimal | None

    def as_dict(self, by: str) -> dict[str, object]:
        baseline = self.frontier_baseline_usd
        return {
            by: self.group, "tickets": self.tickets, "entries": self.entries,
            "compound_usd": str(self.compound_usd),
            "frontier_baseline_usd": None if baseline is None else str(baseline),
            "saving_usd": None if baseline is None else str(baseline - self.compound_usd),
        }


async def cost_report(
    conn: AsyncConnection, *, by: GroupBy, since: datetime, until: datetime | None = None,
    business_units: list[str] | None = None, prices: dict[str, Price] | None = None,
    include_bench: bool = False,
) -> list[CostRow]:
    """One row per group, highest compound cost first, then a `TOTAL` row."""
    from sqlalchemy import cast, func, select
    from sqlalchemy.types import Date

    from pinworks_common.db.tables import cost_ledger
    from pinworks_common.pricing import FRONTIER, load_prices
    from pinworks_common.synthetic import BENCH_UNIT_PREFIX

    prices = load_prices() if prices is None else prices
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
    rows = (await conn.execute(
        select(key.label("grp"), cost_ledger.c.ticket_id, func.count().label("n"),
               func.sum(cost_ledger.c.amount_usd).label("usd"))
        .where(*where).group_by(key, cost_ledger.c.ticket_id)
    )).all()
    baseline_of = await _frontier_baselines(conn, {row.ticket_id for row in rows},
                                            prices.get(FRONTIER))

    tickets_of: dict[str, set[str]] = {}
    entries_of: dict[str, int] = {}
    usd_of: dict[str, Decimal] = {}
    for row in rows:
        tickets_of.setdefault(row.grp, set()).add(row.ticket_id)
        entries_of[row.grp] = entries_of.get(row.grp, 0) + int(row.n)
        usd_of[row.grp] = usd_of.get(row.grp, Decimal(0)) + Decimal(row.usd)

    def baseline(ids: set[str]) -> Decimal | None:
        if by is GroupBy.component:
            return None  # a component is part of a ticket; the baseline is per ticket
        return sum((baseline_of.get(tid, Decimal(0)) for tid in ids), Decimal(0))

    report = [
        CostRow(name, len(ids), entries_of[name], usd_of[name].quantize(CENT), baseline(ids))
        for name, ids in tickets_of.items()
    ]
    report.sort(key=lambda r: (-r.compound_usd, r.group))
    everyone = {row.ticket_id for row in rows}
    report.append(CostRow("TOTAL", len(everyone), sum(r.entries for r in report),
                          sum((r.compound_usd for r in report), Decimal(0)), baseline(everyone)))
    return report


async def _frontier_baselines(conn: AsyncConnection, ticket_ids: set[str],
                              frontier: Price | None) -> dict[str, Decimal]:
    """What one frontier call would have cost on each ticket's text, to the cent."""
    from sqlalchemy import select

    from pinworks_common.db.tables import tickets
    from pinworks_common.pricing import estimated_cost, priced_text

    ordered = sorted(ticket_ids)
    texts: dict[str, str] = {}
    for start in range(0, len(ordered), 5000):
        chunk = ordered[start:start + 5000]
        for t in (await conn.execute(
            select(tickets.c.ticket_id, tickets.c.subject, tickets.c.body)
            .where(tickets.c.ticket_id.in_(chunk))
        )).all():
            texts[t.ticket_id] = priced_text(t.subject, t.body)
    return {tid: estimated_cost(frontier, text).quantize(CENT) for tid, text in texts.items()}


def render(report: list[CostRow], by: str, fmt: Format) -> str:
    dicts = [row.as_dict(by) for row in report]
    if fmt is Format.json:
        return json.dumps(dicts, indent=2)
    if fmt is Format.csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(dicts[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in d.items()} for d in dicts)
        return out.getvalue()
    raise ValueError("tables are printed, not rendered to text")


EXPLANATION = (
    "compound: what pinworks' team of components actually charged (the cost ledger); "
    "entries: ledger charges, one per component per ticket; all-frontier baseline: what one "
    "llm_frontier call per ticket would have cost; saving: baseline minus compound.")


def _table(report: list[CostRow], by: str) -> Table:
    from rich.table import Table

    table = Table(title=f"Cost by {by} (USD)", caption=EXPLANATION)
    for column in (by, "tickets", "entries", "compound", "all-frontier baseline", "saving"):
        table.add_column(column, justify="left" if column == by else "right")
    for row in report:
        baseline = row.frontier_baseline_usd
        table.add_row(
            row.group, str(row.tickets), str(row.entries), f"{row.compound_usd:.6f}",
            "-" if baseline is None else f"{baseline:.6f}",
            "-" if baseline is None else f"{baseline - row.compound_usd:.6f}",
            style="bold" if row.group == "TOTAL" else None,
        )
    return table


@report_app.command("costs")
def costs(
    by: Annotated[GroupBy, typer.Option("--by", help="Group by this.")] = GroupBy.business_unit,
    since: Annotated[str, typer.Option(help="ISO date/datetime (UTC), inclusive.")] = "",
    until: Annotated[str | None, typer.Option(help="ISO date/datetime (UTC), exclusive.")] = None,
    business_unit: Annotated[list[str] | None, typer.Option(
        "--business-unit", help="Only these business units (repeatable).")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    include_bench: Annotated[bool, typer.Option(
        "--include-bench", help="Also count the bench's synthetic tickets (bench-* units).")
    ] = False,
) -> None:
    """What pinworks charged per group ("compound": the sum of its components' charges, one
    ledger "entry" per component per ticket) beside sending every ticket to the frontier LLM."""
    from pinworks_common.pricing import load_prices

    start = parse_when(since) if since else datetime.now(UTC) - timedelta(days=30)
    end = parse_when(until) if until else None
    try:
        prices = load_prices()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    report = run_command(with_platform_db(lambda conn: cost_report(
        conn, by=by, since=start, until=end, business_units=business_unit, prices=prices,
        include_bench=include_bench)))
    if fmt is Format.table:
        console.print(_table(report, by.value))
        console.print(f"since {start.isoformat()}" + (f" until {end.isoformat()}" if end else ""),
                      highlight=False)
        return
    typer.echo(render(report, by.value, fmt), nl=False)




async def quality_report(conn: AsyncConnection, events: int = 20
                         ) -> dict[str, list[dict[str, Any]]]:
    """Every scope the quality guard judged (its latest estimate and state) and its latest
    tightenings and loosenings, newest first."""
    from pinworks_common.quality import store

    return {"scopes": [scope.as_dict() for scope in (await store.scopes(conn)).values()],
            "events": [event.as_dict() for event in await store.events(conn, events)]}


QUALITY_EXPLANATION = (
    "judged: automatic answers agents marked right or wrong (the random quality sample) or "
    "corrected, since the scope was last loosened; bound: one-sided Clopper-Pearson upper bound "
    "at the budget's confidence (Wilson lower bound beside it); a judged scope whose bound "
    "passes its budget is tightened: its tickets go to people until `pinworks quality loosen`. "
    "Below: the latest tightenings and loosenings, with why.")


def _quality_table(report: dict[str, list[dict[str, Any]]]) -> Table:
    from rich.table import Table

    table = Table(title="Live wrong-answer estimate of automatic answers",
                  caption=QUALITY_EXPLANATION)
    for column in ("scope", "state", "judged", "wrong", "rate", "interval", "budget"):
        table.add_column(column, justify="right" if column in ("judged", "wrong") else "left",
                         no_wrap=column in ("scope", "state"))
    for scope in report["scopes"]:
        table.add_row(
            f"{scope['kind']} {scope['name']}", scope["state"].upper()
            if scope["state"] == "tightened" else scope["state"],
            str(scope["reviewed"]), str(scope["wrong"]), f"{scope['rate']:.2%}",
            f"{scope['lower_bound']:.2%} - {scope['upper_bound']:.2%}",
            f"{scope['max_wrong_rate']:.2%} at {scope['confidence']:.0%}",
            style="bold red" if scope["state"] == "tightened" else None)
    return table


@report_app.command("quality")
def quality(
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    events: Annotated[int, typer.Option(min=0, max=1000, help="Latest events shown.")] = 20,
) -> None:
    """The live wrong-answer rate of automatic answers per business unit and intent group,
    with its confidence interval, budget and state (tightened scopes go to people)."""
    report = run_command(with_platform_db(lambda conn: quality_report(conn, events)))
    if fmt is Format.json:
        typer.echo(json.dumps(report, indent=2))
        return
    if fmt is Format.csv:
        raise typer.BadParameter("the quality report is a table or json")
    if not report["scopes"]:
        typer.echo("no scope judged yet: agents have marked no automatic answer "
                   "(pinworks quality list)")
    else:
        console.print(_quality_table(report))
    for event in report["events"]:
        typer.echo(f"{event['created_at']}  {event['action']} {event['kind']} {event['name']} "
                   f"by {event['actor']}: {event['reason']}")
