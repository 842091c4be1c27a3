"""`pinworks queue …`: work the human escalation queue from a terminal.

The `pinworks` CLI mounts `queue_app` through the entry point `pinworks.cli` / `queue`. The
queue's domain functions and the database load inside the commands, so mounting costs nothing
until one runs.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

queue_app = typer.Typer(help="Work the human escalation queue.", no_args_is_help=True)
console = LazyConsole()


def _units(business_unit: list[str] | None) -> list[str] | None:
    return business_unit or None


AgentOption = Annotated[str, typer.Option("--agent", help="Your agent id.")]
UnitOption = Annotated[list[str] | None, typer.Option(
    "--business-unit", help="Only these business units (repeatable).")]


async def _queue_page(conn: Any, business_units: list[str] | None, limit: int, offset: int
                      ) -> tuple[list[Any], int]:
    """One page of the queue, most urgent first, and how many open or claimed tickets there are."""
    from pinworks_escalation.queue import QueueQuery, count_queue, list_queue

    query = QueueQuery(limit=limit, offset=offset)
    return (await list_queue(conn, business_units=business_units, query=query),
            await count_queue(conn, query, business_units=business_units))


@queue_app.command("list")
def queue_list(
    business_unit: UnitOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Tickets per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the next page).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as a JSON list.")
                       ] = False,
) -> None:
    """List open and claimed escalations, most urgent first, a page at a time."""
    from rich.table import Table

    items, total = run_command(with_platform_db(
        lambda conn: _queue_page(conn, _units(business_unit), limit, offset)))
    shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
    more = offset + len(items) < total
    next_page = (f"; next page: pinworks queue list --offset {offset + len(items)}"
                 + (f" --limit {limit}" if limit != 50 else "")) if more else ""
    if as_json:
        sys.stdout.write(json.dumps([i.as_dict() for i in items], indent=2) + "\n")
        if more:
            typer.echo(f"showing {shown} of {total}{next_page}", err=True)
        return
    table = Table(title=f"{total} escalated tickets open or claimed (showing {shown})")
    for column in ("ticket", "unit", "status", "priority", "SLA due", "claimed by"):
        table.add_column(column, no_wrap=column != "claimed by")
    table.add_column("reasons", ratio=1, min_width=20)
    for item in items:
        due = f"{item.sla_due_at:%Y-%m-%d %H:%M}" if item.sla_due_at else "-"
        table.add_row(item.ticket_id, item.business_unit, item.status, str(item.priority),
                      due + (" OVERDUE" if item.overdue() else ""),
                      item.holder() or "-", "; ".join(item.reasons))
    console.print(table)
    if more or offset:
        typer.echo(f"showing {shown} of {total}{next_page}")


@queue_app.command("claim")
def queue_claim(
    agent: AgentOption,
    ticket_id: Annotated[str | None, typer.Argument(help="A ticket; default the most urgent.")] = None,
    business_unit: UnitOption = None,
    lease_minutes: Annotated[int, typer.Option(min=1, max=480)] = 15,
) -> None:
    """Claim a ticket with a lease; nobody else can take it until you release it or it expires."""
    from datetime import timedelta

    from pinworks_escalation.queue import claim

    item = run_command(with_platform_db(lambda conn: claim(
        conn, agent, ticket_id=ticket_id, business_units=_units(business_unit),
        lease=timedelta(minutes=lease_minutes)), write=True))
    if item is None:
        console.print("[yellow]nothing to claim[/]")
        raise typer.Exit(1)
    envelope = item.context.get("envelope", {})
    console.print(f"claimed {item.ticket_id} until {item.lease_expires_at:%H:%M:%S} "
                  f"(priority {item.priority})", highlight=False)
    console.print(f"reasons: {'; '.join(item.reasons)}", highlight=False, markup=False)
    console.print(f"customer: {envelope.get('ticket', {}).get('body', '')}",
                  highlight=False, markup=False)


@queue_app.command("release")
def queue_release(ticket_id: str, agent: AgentOption) -> None:
    """Give a claimed ticket back to the queue."""
    from pinworks_escalation.queue import QueueError, release

    try:
        run_command(with_platform_db(lambda conn: release(conn, ticket_id, agent), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"released {ticket_id}")


@queue_app.command("resolve")
def queue_resolve(
    ticket_id: str,
    agent: AgentOption,
    reply: Annotated[str, typer.Option(help="The answer sent to the customer.")],
) -> None:
    """Resolve a claimed ticket; publishes the human `resolved` outcome."""
    from pinworks_common.pricing import agent_cost_usd
    from pinworks_escalation.queue import QueueError, resolve

    try:
        agent_cost = agent_cost_usd()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        outcome = run_command(with_platform_db(
            lambda conn: resolve(conn, ticket_id, agent, reply, agent_cost=agent_cost),
            write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print_json(outcome.model_dump_json())


def render_queued(found: dict[str, Any]) -> str:
    """A queued ticket as an agent reads it: the customer's message first, then why it is here,
    what automation made of it, what it cost and who did what."""
    envelope = found.get("envelope") or {}
    return "\n".join([*_customer_lines(found, envelope.get("ticket") or {}),
                      *_automation_lines(envelope), *_cost_and_history_lines(found)])


def _wrapped(text: str, indent: str = "  ") -> list[str]:
    import textwrap

    return [textwrap.fill(p, 96, initial_indent=indent, subsequent_indent=indent) or indent
            for p in str(text).splitlines()] or [indent]


def _customer_lines(found: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
    """Whose ticket, how urgent, what the customer wrote and why a person has it."""
    holder = found.get("claimed_by")
    lines = [
        f"Ticket {found['ticket_id']}  ({found['business_unit']}, {found['status']}"
        + (f" by {holder}" if holder else "") + f", priority {found['priority']}"
        + (f", tier {found['tier']}" if found.get("tier") else "") + ")",
        f"SLA due {found.get('sla_due_at') or '-'}" + ("  OVERDUE" if found.get("overdue") else "")
        + f"   escalated {found.get('created_at')} by {found.get('source_stage')}",
        "",
        "Customer" + (f" {ticket['customer_id']}" if ticket.get("customer_id") else "")
        + (f" via {ticket['channel']}" if ticket.get("channel") else "") + ":",
    ]
    if ticket.get("subject"):
        lines.append(f"  Subject: {ticket['subject']}")
    lines += _wrapped(ticket.get("body", ""))
    return lines + ["", "Why a person:"] + [f"  - {reason}" for reason in found.get("reasons", [])]


def _automation_lines(envelope: dict[str, Any]) -> list[str]:
    """What the classifier, the router and the specialists made of the ticket."""
    classification = envelope.get("classification") or {}
    route = envelope.get("route") or {}
    draft = envelope.get("draft") or {}
    lines = []
    if classification:
        alternatives = ", ".join(f"{a['intent']} {a['score']:.0%}"
                                 for a in classification.get("alternatives", [])[1:4])
        lines += ["", f"Classifier: {classification.get('intent')} at "
                      f"{float(classification.get('confidence') or 0):.0%}"
                      + (" (out of scope)" if classification.get("out_of_scope") else "")
                      + (f"; next: {alternatives}" if alternatives else "")
                      + f"  [{classification.get('model_version')}]"]
    if route:
        lines.append(f"Route: {route.get('handler')} by rule {route.get('rule')}: "
                     f"{route.get('reason')}")
    if draft:
        lines += ["", f"Draft by {draft.get('handler')} (not sent):"]
        lines += _wrapped(draft.get("answer", ""))
    for attempt in envelope.get("attempts", []):
        lines.append(f"Tried {attempt.get('handler')}: {attempt.get('result')}, "
                     f"{attempt.get('reason')}")
    return lines


def _cost_and_history_lines(found: dict[str, Any]) -> list[str]:
    """What the ticket cost so far, corrections, the reply sent and who did what."""
    lines = ["", f"Cost so far: ${float(found.get('cost_usd') or 0):.6f}"
             + "".join(f"\n  {c['component']:<14} ${c['amount_usd']:.6f}"
                       for c in found.get("costs", []))]
    for correction in found.get("corrections") or []:
        lines.append(f"Corrected: {correction}")
    if found.get("reply"):
        lines += ["", "Reply sent:"] + _wrapped(found["reply"])
    actions = found.get("actions") or []
    if actions:
        lines += ["", "History:"] + [
            f"  {a['at']}  {a['actor_type']} {a['actor']}: {a['action']}" for a in actions]
    return lines + ["", f"trace {found.get('trace_id') or '-'}; full trail: "
                        f"pinworks audit {found['ticket_id']}; raw: pinworks queue show "
                        f"{found['ticket_id']} --json"]


@queue_app.command("show")
def queue_show(
    ticket_id: str,
    business_unit: UnitOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Show a queued ticket: the customer's message, why it escalated, the classification,
    route and draft, the cost and who did what."""
    from pinworks_escalation.queue import get_item, ticket_context

    async def load(conn: Any) -> dict[str, Any] | None:
        item = await get_item(conn, ticket_id, business_units=_units(business_unit))
        if item is None:
            return None
        return {**item.as_dict(), "envelope": item.context.get("envelope", {}),
                "corrections": item.context.get("corrections", []), "reply": item.reply,
                **(await ticket_context(conn, ticket_id))}

    found = run_command(with_platform_db(load))
    if found is None:
        typer.echo(f"no escalated ticket {ticket_id}"
                   + (f" in {', '.join(business_unit)}" if business_unit else ""), err=True)
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render_queued(found) + "\n")


@queue_app.command("reassign")
def queue_reassign(
    ticket_id: str,
    agent: AgentOption,
    to: Annotated[str, typer.Option("--to", help="The registered agent who takes it.")],
    business_unit: UnitOption = None,
    lease_minutes: Annotated[int, typer.Option(min=1, max=480)] = 15,
) -> None:
    """Hand a ticket to a colleague who serves its business unit."""
    from datetime import timedelta

    from pinworks_escalation.queue import QueueError, reassign

    try:
        item = run_command(with_platform_db(lambda conn: reassign(
            conn, ticket_id, agent, to, business_units=_units(business_unit),
            lease=timedelta(minutes=lease_minutes)), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"{ticket_id} is now held by {item.claimed_by} until "
                  f"{item.lease_expires_at:%H:%M:%S}", highlight=False)


def known_intent(name: str) -> str:
    """The known intent ``name`` names (case and separators forgiven); otherwise a clear error
    with the nearest intents."""
    from pinworks_contracts.intents import UnknownIntent, validate_intent

    try:
        return validate_intent(name)
    except UnknownIntent as unknown:
        hint = (f"did you mean {' or '.join(unknown.suggestions)}?" if unknown.suggestions
                else "list them with `pinworks queue intents`")
        raise typer.BadParameter(f"{unknown.intent!r} is not an intent the classifier knows; "
                                 f"{hint}", param_hint="--intent") from None


@queue_app.command("intents")
def queue_intents(
    match: Annotated[str | None, typer.Argument(help="Only intents containing this text.")] = None,
) -> None:
    """List the intents `send-back --intent` accepts (the classifier's labels)."""
    from pinworks_contracts.intents import known_intents

    for intent in sorted(known_intents()):
        if match is None or match.lower().replace(" ", "_") in intent:
            typer.echo(intent)


@queue_app.command("send-back")
def queue_send_back(
    ticket_id: str,
    agent: AgentOption,
    intent: Annotated[str, typer.Option(
        "--intent", help="The intent the ticket really has (see `pinworks queue intents`).")],
    business_unit: UnitOption = None,
) -> None:
    """Correct the intent of a ticket you hold: kept as a labelled example for retraining the
    classifier; the ticket returns to automation."""
    from pinworks_escalation.queue import QueueError, send_back

    intent = known_intent(intent)
    try:
        result = run_command(with_platform_db(lambda conn: send_back(
            conn, ticket_id, agent, intent, business_units=_units(business_unit)), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"{ticket_id}: intent {result['from_intent']} -> {result['to_intent']} "
                  f"recorded as labelled example {result['example_key']}", highlight=False)


@queue_app.command("examples")
def queue_examples(
    out: Annotated[Path | None, typer.Option(help="CSV file to write; default stdout.")] = None,
) -> None:
    """Export the intents agents corrected as labelled examples (CSV: text, intent, ...) for
    retraining the classifier (never the bench's synthetic tickets)."""
    import csv

    from sqlalchemy import select

    from pinworks_common.db.tables import labelled_examples as table
    from pinworks_common.synthetic import BENCH_UNIT_PREFIX

    async def load(conn: Any) -> list[Any]:
        return list(await conn.execute(
            select(table).where(table.c.business_unit.not_like(f"{BENCH_UNIT_PREFIX}%"))
            .order_by(table.c.id)))

    rows = run_command(with_platform_db(load))
    columns = ["text", "intent", "ticket_id", "business_unit", "labelled_by",
               "predicted_intent", "predicted_confidence", "model_version", "created_at"]
    with (out.open("w", newline="") if out else contextlib.nullcontext(sys.stdout)) as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.text, row.corrected_intent, row.ticket_id, row.business_unit,
                             row.labelled_by, row.predicted_intent, row.predicted_confidence,
                             row.model_version, row.created_at.isoformat()])
    if out:
        console.print(f"{len(rows)} labelled examples written to {out}", highlight=False)
