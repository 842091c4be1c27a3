"""`pinworks queue …`: work the human escalation queue from a terminal, as the agent signed in
with `pinworks login`.

Every queue action is a call to the escalation console's API with that agent's token
(`pinworks_common.commands.agent_session`), so the terminal applies exactly the console's
business-unit scoping and refuses in the console's words; no database role is needed. Only
`queue examples` (the operator's export of labelled examples for retraining) reads the
database, as `DATABASE_URL`'s role. The `pinworks` CLI mounts `queue_app` through the entry
point `pinworks.cli` / `queue`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from pinworks_common.commands.agent_session import as_agent
from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

queue_app = typer.Typer(help="Work the human escalation queue (as the agent of `pinworks login`).",
                        no_args_is_help=True)
console = LazyConsole()

UnitOption = Annotated[str | None, typer.Option(
    "--business-unit", help="Only this one of your business units.")]


def _ticket_path(ticket_id: str, action: str = "") -> str:
    return f"/api/tickets/{quote(ticket_id, safe='')}" + (f"/{action}" if action else "")


def _at(value: str | None, form: str) -> str:
    return f"{datetime.fromisoformat(value):{form}}" if value else "-"


@queue_app.command("list")
def queue_list(
    business_unit: UnitOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Tickets per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the next page).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as a JSON list.")
                       ] = False,
) -> None:
    """List the open and claimed escalations of your business units, most urgent first, a
    page at a time."""
    from rich.table import Table

    answer = as_agent("GET", "/api/queue", query={
        "business_unit": business_unit, "limit": limit, "offset": offset})
    items: list[dict[str, Any]] = answer.data
    total = int(answer.headers.get("x-total-count", len(items)))
    shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
    more = offset + len(items) < total
    next_page = (f"; next page: pinworks queue list --offset {offset + len(items)}"
                 + (f" --limit {limit}" if limit != 50 else "")) if more else ""
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        if more:
            typer.echo(f"showing {shown} of {total}{next_page}", err=True)
        return
    table = Table(title=f"{total} escalated tickets open or claimed (showing {shown})")
    for column in ("ticket", "unit", "status", "priority", "SLA due", "claimed by"):
        table.add_column(column, no_wrap=column != "claimed by")
    table.add_column("reasons", ratio=1, min_width=20)
    for item in items:
        due = _at(item["sla_due_at"], "%Y-%m-%d %H:%M") + (" OVERDUE" if item["overdue"] else "")
        table.add_row(item["ticket_id"], item["business_unit"], item["status"],
                      str(item["priority"]), due, item["claimed_by"] or "-",
                      "; ".join(item["reasons"]))
    console.print(table)
    if more or offset:
        typer.echo(f"showing {shown} of {total}{next_page}")


@queue_app.command("claim")
def queue_claim(
    ticket_id: Annotated[str | None, typer.Argument(help="A ticket; default the most urgent.")] = None,
    business_unit: Annotated[str | None, typer.Option(
        "--business-unit", help="Without a ticket: the most urgent of this one of your units.")
    ] = None,
) -> None:
    """Claim a ticket with the console's lease; nobody else can take it until you release it
    or it expires."""
    if ticket_id is None:
        item = as_agent("POST", "/api/claim-next", query={"business_unit": business_unit}).data
    else:
        item = as_agent("POST", _ticket_path(ticket_id, "claim")).data
    detail = as_agent("GET", _ticket_path(item["ticket_id"])).data
    console.print(f"claimed {item['ticket_id']} until "
                  f"{_at(item['lease_expires_at'], '%H:%M:%S')} (priority {item['priority']})",
                  highlight=False, markup=False)
    console.print(f"reasons: {'; '.join(item['reasons'])}", highlight=False, markup=False)
    console.print(f"customer: {(detail['envelope'].get('ticket') or {}).get('body', '')}",
                  highlight=False, markup=False)


@queue_app.command("release")
def queue_release(ticket_id: str) -> None:
    """Give a ticket you hold back to the queue."""
    as_agent("POST", _ticket_path(ticket_id, "release"))
    console.print(f"released {ticket_id}", highlight=False, markup=False)


@queue_app.command("resolve")
def queue_resolve(
    ticket_id: str,
    reply: Annotated[str, typer.Option(help="The answer sent to the customer.")],
    intent: Annotated[str | None, typer.Option(
        "--intent", help="What the ticket was really about, when not its classification "
        "(see `pinworks queue intents`); an automatic answer with another intent counts as "
        "wrong.")] = None,
) -> None:
    """Resolve a ticket you hold; publishes the human `resolved` outcome."""
    body = {"reply": reply} | ({"intent": known_intent(intent)} if intent else {})
    answer = as_agent("POST", _ticket_path(ticket_id, "resolve"), body=body)
    console.print_json(json.dumps(answer.data["outcome"]))


@queue_app.command("reopen")
def queue_reopen(
    ticket_id: str,
    reason: Annotated[str, typer.Option(help="Why the automatic answer needs a person.")],
) -> None:
    """Put a ticket automation answered back in the queue for a person (then claim it)."""
    item = as_agent("POST", _ticket_path(ticket_id, "reopen"), body={"reason": reason}).data
    console.print(f"reopened {item['ticket_id']} (priority {item['priority']}, SLA due "
                  f"{_at(item['sla_due_at'], '%Y-%m-%d %H:%M')})", highlight=False, markup=False)


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
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Show a ticket of your business units: the customer's message, why it escalated, the
    classification, route and draft, the cost and who did what."""
    found = as_agent("GET", _ticket_path(ticket_id)).data
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render_queued(found) + "\n")


@queue_app.command("reassign")
def queue_reassign(
    ticket_id: str,
    to: Annotated[str, typer.Option("--to", help="The registered agent who takes it.")],
) -> None:
    """Hand a ticket to a colleague who serves its business unit."""
    item = as_agent("POST", _ticket_path(ticket_id, "reassign"), body={"agent": to}).data
    console.print(f"{ticket_id} is now held by {item['claimed_by']} until "
                  f"{_at(item['lease_expires_at'], '%H:%M:%S')}", highlight=False, markup=False)


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
    """List the intents `send-back --intent` and `resolve --intent` accept (the classifier's labels)."""
    from pinworks_contracts.intents import known_intents

    for intent in sorted(known_intents()):
        if match is None or match.lower().replace(" ", "_") in intent:
            typer.echo(intent)


@queue_app.command("send-back")
def queue_send_back(
    ticket_id: str,
    intent: Annotated[str, typer.Option(
        "--intent", help="The intent the ticket really has (see `pinworks queue intents`).")],
) -> None:
    """Correct the intent of a ticket you hold: kept as a labelled example for retraining the
    classifier; the ticket returns to automation."""
    intent = known_intent(intent)
    result = as_agent("POST", _ticket_path(ticket_id, "send-back"), body={"intent": intent}).data
    console.print(f"{ticket_id}: intent {result['from_intent']} -> {result['to_intent']} "
                  f"recorded as labelled example {result['example_key']}", highlight=False,
                  markup=False)


@queue_app.command("examples")
def queue_examples(
    out: Annotated[Path | None, typer.Option(help="CSV file to write; default stdout.")] = None,
) -> None:
    """Export the intents agents corrected as labelled examples (CSV: text, intent, ...) for
    retraining the classifier (never the bench's synthetic tickets). An operator's export of
    every unit: it reads the database as DATABASE_URL's role, not as a signed-in agent."""
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
