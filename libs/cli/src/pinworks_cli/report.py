"""`pinworks report costs` and `pinworks report quality`: the cost ledger with the people in it
beside the all-frontier and all-human baselines (computed in `pinworks_cli.costs`, which says
what each figure is), and the live wrong-answer estimate of automatic answers.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pinworks_cli.costs import CostRow, GroupBy, cost_report
from pinworks_common.commands.options import parse_when
from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CostRow", "Format", "GroupBy", "cost_report", "render", "report_app"]

report_app = typer.Typer(help="Reports over the audit and the cost ledger.", no_args_is_help=True)
console = LazyConsole()


Format = StrEnum("Format", ["table", "csv", "json"])
"""What `--format` renders the report as."""


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
    "compound: what pinworks' team of components actually charged (the cost ledger, agents "
    "included: PINWORKS_AGENT_COST_USD per ticket an agent resolved; entries: ledger charges, "
    "one per component per ticket; both in --format json/csv); people: tickets a person "
    "resolved or that wait for one (waiting: escalated, or reopened by an agent after the "
    "automatic answer; not charged yet, priced at PINWORKS_AGENT_COST_USD); with people: "
    "compound plus the waiting tickets' agents (by "
    "component: compound); per ticket: with people over tickets; "
    "all-frontier: one llm_frontier call per ticket, no people; all-human: a person for every "
    "ticket; saving: all-frontier minus with people.")


def _money(value: object) -> str:
    """Four decimals, as `policy calibrate` prints cost per ticket (json and csv are exact)."""
    return "-" if value is None else f"{Decimal(str(value)):.4f}"


def _table(report: list[CostRow], by: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=f"Cost by {by} (USD)", caption=EXPLANATION, box=box.SIMPLE_HEAD,
                  show_edge=False, padding=(0, 0))
    columns = (by, "tickets", "people\n(waiting)", "with\npeople", "per\nticket",
               "all-\nfrontier\n/ticket", "all-\nhuman\n/ticket", "saving")
    width = max(len(row.group) for row in report)
    for column in columns:  # a figure folds onto two lines rather than lose digits
        table.add_column(column, justify="left" if column == by else "right", overflow="fold",
                         min_width=min(width, 24) if column == by else None)
    for row in report:
        d = row.as_dict(by)
        people = "-" if row.people is None else f"{row.people.tickets} ({row.people.awaiting})"
        with_people = d["with_people_usd"] if row.people else d["compound_usd"]
        table.add_row(
            row.group, str(row.tickets), people, _money(with_people),
            _money(d["cost_per_ticket_usd"]), _money(d["frontier_per_ticket_usd"]),
            _money(d["all_human_per_ticket_usd"]), _money(d["saving_usd"]),
            style="bold" if row.group == "TOTAL" else None)
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
    ledger "entry" per component per ticket), the people in it and cost per ticket, beside
    sending every ticket to the frontier LLM or to a person (PINWORKS_AGENT_COST_USD)."""
    from pinworks_common.pricing import agent_cost_usd, load_prices

    start = parse_when(since) if since else datetime.now(UTC) - timedelta(days=30)
    end = parse_when(until) if until else None
    try:
        prices, agent_cost = load_prices(), agent_cost_usd()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    report = run_command(with_platform_db(lambda conn: cost_report(
        conn, by=by, since=start, until=end, business_units=business_unit, prices=prices,
        include_bench=include_bench, agent_cost=agent_cost)))
    if fmt is Format.table:
        console.print(_table(report, by.value))
        console.print(f"since {start.isoformat()}" + (f" until {end.isoformat()}" if end else "")
                      + f"; a person costs {agent_cost} USD per ticket", highlight=False)
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
