"""`pinworks erase --ticket ID | --customer ID --by AGENT`: erase a ticket's or a customer's
personal data, recorded under the agent who answers for it.

The audit stays whole (it never held the data) and records the erasure; see
`pinworks_escalation.erasure` for what is erased where. The `pinworks` CLI mounts `erase_app`
through the entry point `pinworks.cli` / `erase`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from pinworks_common.commands.platform import connect_nats, nats_url, run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

NOTHING_TO_ERASE = "no such ticket: nothing erased"
erase_app = typer.Typer(help="Erase a ticket's or a customer's personal data.")
console = LazyConsole()


@erase_app.callback(invoke_without_command=True)
def erase(
    by: Annotated[str, typer.Option(
        "--by", help="The agent who answers for the erasure (a name of `pinworks agent list`; "
        "recorded in the audit).")],
    ticket: Annotated[list[str] | None, typer.Option(
        "--ticket", help="A ticket id (repeatable).")] = None,
    customer: Annotated[str | None, typer.Option(
        "--customer", help="A customer id: every ticket of this customer.")] = None,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="The support platform whose ids --ticket and --customer are: its "
        "tickets only (pinworks' id of another platform's ticket is `<platform>~ID`).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Redact the tickets' text, delete the unredacted originals and the stream copy of each
    submission, and record the erasure in the audit (without the data) under the agent --by
    names. Cannot be undone.

    All that would refuse the erasure (an id no ticket can have, an unknown agent, no such
    ticket) is checked before the confirmation prompt, so an operator is never asked to confirm
    an erasure that is then refused; the erasure's own transaction checks the agent again (it
    may have been removed meanwhile) before anything changes."""
    from pinworks_common.db.records import unknown_agent
    from pinworks_contracts.messages import pinworks_ticket_id
    from pinworks_escalation.erasure import ErasureRefused, erase_for_agent, tickets_of_customer

    if not ticket and not customer:
        console.print("[red]name a ticket (--ticket) or a customer (--customer)[/]")
        raise typer.Exit(2)
    if (malformed := _malformed(ticket or [], platform)) is not None:
        console.print(f"[red]{malformed}[/]", highlight=False)
        raise typer.Exit(2)
    named = [pinworks_ticket_id(platform, t) if platform else t for t in ticket or []]

    async def ticket_ids(conn: Any) -> list[str]:
        ids = list(named)
        if customer:
            ids += await tickets_of_customer(conn, customer, platform)
        return list(dict.fromkeys(ids))

    async def refusal(conn: Any) -> str | None:
        if (unknown := await unknown_agent(conn, by, "the erasure")) is not None:
            return unknown
        if not await _existing_tickets(conn, await ticket_ids(conn)):
            return NOTHING_TO_ERASE
        return None

    if (refused := run_command(with_platform_db(refusal))) is not None:
        console.print(f"[red]{refused}[/]", highlight=False)
        raise typer.Exit(1)
    if not yes:
        typer.confirm("Erase the personal data of "
                      + (f"customer {customer}" if customer else ", ".join(ticket or []))
                      + "? This cannot be undone", abort=True)
    scope = f"customer {customer}" if customer else "ticket"

    async def action(conn: Any) -> list[Any]:
        return await erase_for_agent(conn, await ticket_ids(conn), agent=by, scope=scope,
                                     now=datetime.now(UTC))

    try:
        erased = run_command(with_platform_db(action, write=True))
    except ErasureRefused as refused:
        console.print(f"[red]{refused}[/]", highlight=False)
        raise typer.Exit(1) from None
    if not erased:
        console.print(NOTHING_TO_ERASE)
        raise typer.Exit(1)
    deleted = run_command(_delete_submissions(erased))
    console.print(f"erased the personal data of {len(erased)} ticket(s): "
                  + ", ".join(item.ticket_id for item in erased), highlight=False)
    console.print(f"{deleted} submission(s) deleted from the tickets stream "
                  f"(the others had aged out)", highlight=False)


def _malformed(ticket_ids: list[str], platform: str | None) -> str | None:
    """Why no ticket can have one of `ticket_ids` (given as --ticket under --platform), or
    None: such an erasure could only end in 'no such ticket'."""
    import re

    from pinworks_contracts.messages import PINWORKS_TICKET_ID_PATTERN, TICKET_ID_PATTERN
    from pinworks_contracts.subjects import PLATFORM_PATTERN

    if platform is not None and not re.fullmatch(PLATFORM_PATTERN, platform):
        return f"--platform {platform!r} is not a platform name (letters, digits, _ and -)"
    pattern, shape = ((TICKET_ID_PATTERN, "a ticket id as its platform submits it")
                      if platform is not None else
                      (PINWORKS_TICKET_ID_PATTERN, "a ticket id (`<platform>~ID` for another "
                       "platform's, or --platform)"))
    for ticket_id in ticket_ids:
        if not re.fullmatch(pattern, ticket_id):
            return f"--ticket {ticket_id!r} is not {shape}: no ticket has it"
    return None


async def _existing_tickets(conn: Any, ticket_ids: list[str]) -> list[str]:
    """Those of `ticket_ids` a ticket has."""
    from sqlalchemy import select

    from pinworks_common.db.tables import tickets

    if not ticket_ids:
        return []
    result = await conn.execute(select(tickets.c.ticket_id).where(tickets.c.ticket_id.in_(ticket_ids)))
    return list(result.scalars())


async def _delete_submissions(erased: list[Any]) -> int:
    from pinworks_contracts.subjects import TICKETS_STREAM
    from pinworks_escalation.erasure import delete_submissions

    nc = await connect_nats(nats_url())
    try:
        return await delete_submissions(nc.jetstream(), TICKETS_STREAM, erased)
    finally:
        await nc.close()
