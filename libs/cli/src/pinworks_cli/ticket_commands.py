"""The ticket commands: `submit` one, `replay` a CSV of many, `audit` a ticket's whole trail.

Registered on the `pinworks` app by `pinworks_cli.main`; NATS, the database and rich load inside
the commands.
"""

from __future__ import annotations

import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

console = LazyConsole()


def submit(
    body: Annotated[str, typer.Argument(help="The customer's message.")],
    ticket_id: Annotated[str | None, typer.Option(
        help="Idempotency key: letters, digits and . _ : - (default: generated).")] = None,
    business_unit: Annotated[str, typer.Option(help="Who pays for the ticket.")] = "retail",
    subject: Annotated[str | None, typer.Option(help="Subject line.")] = None,
    channel: Annotated[str | None, typer.Option(help="email, chat, web, ...")] = None,
    customer_id: Annotated[str | None, typer.Option(help="The customer's id.")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object, e.g. '{\"tier\": \"gold\"}'.")
                        ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome (0: don't).")] = 30,
) -> None:
    """Submit one ticket; print its outcome, or its rejection and reasons as soon as they exist."""
    ticket_id = ticket_id if ticket_id is not None else f"cli-{uuid.uuid4().hex[:12]}"
    ticket: dict[str, Any] = {"ticket_id": ticket_id, "business_unit": business_unit, "body": body}
    for key, value in (("subject", subject), ("channel", channel), ("customer_id", customer_id)):
        if value is not None:
            ticket[key] = value
    if metadata:
        try:
            ticket["metadata"] = json.loads(metadata)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not JSON: {error}", param_hint="--metadata") from None
    from pinworks_cli.publishing import submit_one

    result = run_command(submit_one(ticket_id, json.dumps(ticket).encode(), wait))
    audit_id = _pinworks_id(ticket_id)
    if "outcome" in result:
        outcome = result["outcome"]
        console.print_json(outcome.model_dump_json())
        if outcome.status.value == "rejected":
            raise typer.Exit(1)
    elif "rejected" in result:
        rejected = result["rejected"]
        typer.echo(f"rejected (stream seq {rejected['stream_seq']}): "
                   + "; ".join(rejected["reasons"]))
        typer.echo(f"recorded in rejected_payloads; see `pinworks audit --seq "
                   f"{rejected['stream_seq']}`")
        raise typer.Exit(1)
    elif "duplicate" in result:
        typer.echo(f"{ticket_id} was already submitted with this exact payload (stream seq "
                   f"{result['duplicate']}); nothing new was sent. See `pinworks audit {audit_id}`")
    elif "timeout" in result:
        typer.echo(f"submitted {ticket_id} (stream seq {result['timeout']}); no outcome within "
                   f"{wait:g}s. Follow it with `pinworks audit {audit_id}` or "
                   f"`pinworks audit --seq {result['timeout']}`")
        raise typer.Exit(1)
    else:
        typer.echo(f"submitted {ticket_id} (stream seq {result['submitted']})")


def read_replay_file(path: Path) -> list[tuple[str, bytes]]:
    """(ticket id, payload) per CSV row; the columns are described in
    `pinworks_common.commands.tickets_csv`."""
    from pinworks_common.commands.tickets_csv import read_ticket_rows

    return [(str(t["ticket_id"]), json.dumps(t).encode()) for t in read_ticket_rows(path)]


REPLAY_HELP = ("Submit many tickets from a CSV and summarise outcomes and cost per business "
               "unit, listing the tickets that escalated or were rejected.\n\n"
               "The CSV needs a header row. Columns (any case; aliases in brackets): "
               "body [text, message, description] required; ticket_id [id, ticket], default "
               "FILE-ROW so a rerun is idempotent; business_unit [unit, bu], default retail; "
               "subject [title]; channel [source]; customer_id [customer]; metadata (a JSON "
               "object). Any other column becomes a metadata key.")


def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of tickets.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for all outcomes.")] = 300,
) -> None:
    from collections import Counter, defaultdict

    from rich.progress import Progress
    from rich.table import Table

    from pinworks_cli.publishing import publish_and_collect

    payloads = read_replay_file(file)
    with Progress(console=console.get()) as progress:
        outcomes = run_command(publish_and_collect(payloads, wait, progress))
    statuses = Counter(outcome.status.value for outcome in outcomes.values())
    cost: dict[str, Decimal] = defaultdict(Decimal)
    count: Counter[str] = Counter()
    for outcome in outcomes.values():
        cost[outcome.business_unit or "?"] += outcome.cost_usd
        count[outcome.business_unit or "?"] += 1
    table = Table(title=f"{len(outcomes)}/{len(payloads)} outcomes")
    table.add_column("business unit")
    table.add_column("tickets", justify="right")
    table.add_column("cost (USD)", justify="right")
    for unit in sorted(cost):
        table.add_row(unit, str(count[unit]), f"{cost[unit]:.6f}")
    console.print(table)
    console.print(", ".join(f"{status}: {n}" for status, n in sorted(statuses.items())))
    for status, title in (("escalated", "Escalated to a person"), ("rejected", "Rejected")):
        listed = [o for o in outcomes.values() if o.status.value == status]
        if listed:
            typer.echo(f"{title} ({len(listed)}):")
            for outcome in sorted(listed, key=lambda o: o.ticket_id):
                typer.echo(f"  {outcome.ticket_id}  {outcome.business_unit or '?'}  "
                           + "; ".join(outcome.reasons))
    missing = [ticket_id for ticket_id, _ in payloads if ticket_id not in outcomes]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        console.print(f"[yellow]{len(missing)} tickets without an outcome yet: {shown}[/] "
                      f"(a rejected ticket whose id cannot be read has no outcome: "
                      f"`pinworks audit ID` finds it)", highlight=False)
        raise typer.Exit(1)


def _pinworks_id(ticket_id: str) -> str:
    """pinworks' id of the ticket this command's platform submitted as `ticket_id`."""
    from pinworks_common.commands.platform import platform_of_client
    from pinworks_contracts.messages import pinworks_ticket_id

    return pinworks_ticket_id(platform_of_client(), ticket_id)


def audit(
    ticket_id: Annotated[str | None, typer.Argument(
        help="The ticket id (also finds a rejected payload that carried this id).")] = None,
    seq: Annotated[int | None, typer.Option(
        "--seq", help="Instead: the stream sequence `submit` printed for a rejected payload.")
    ] = None,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="The support platform that submitted TICKET_ID: finds its ticket "
        "`<platform>~TICKET_ID` (the `support` platform's ids are pinworks' own).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a ticket's whole trail: every decision with inputs, version, reason, cost, time."""
    from pinworks_cli.audit import rejected_trail, render_trail, ticket_trail
    from pinworks_contracts.messages import pinworks_ticket_id

    if (ticket_id is None) == (seq is None):
        raise typer.BadParameter("give a TICKET_ID or --seq N (one of them)")
    if platform is not None:
        if ticket_id is None:
            raise typer.BadParameter("--platform names the platform of a TICKET_ID")
        ticket_id = pinworks_ticket_id(platform, ticket_id)
    if seq is not None:
        trail = run_command(with_platform_db(lambda conn: rejected_trail(conn, seq)))
    else:
        assert ticket_id is not None
        trail = run_command(with_platform_db(lambda conn: ticket_trail(conn, ticket_id)))
    if trail is None:
        what = f"stream seq {seq}" if seq is not None else f"ticket {ticket_id}"
        typer.echo(f"no {what} in the audit (nor among rejected payloads)", err=True)
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(trail, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render_trail(trail) + "\n")
