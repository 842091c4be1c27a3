"""`pinworks`: run the platform, submit and replay tickets, read the audit, work the queue.

Imports stay inside the commands: `pinworks --help` and simple commands start in a fraction of
a second because nothing heavy (NATS, SQLAlchemy, the classifier) loads until a command uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pinworks_cli.infra import (
    PlatformUnavailable,
    connections,
    fail,
    run_command,
    with_db,
)
from pinworks_cli.terminal import LazyConsole, plain_usage

if TYPE_CHECKING:
    from rich.progress import Progress

    from pinworks_common.contracts import Outcome

app = typer.Typer(help="pinworks: a team of AI components answering support tickets.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)
queue_app = typer.Typer(help="Work the human escalation queue.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents of the escalation console.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")
app.add_typer(agent_app, name="agent")
app.add_typer(db_app, name="db")

console = LazyConsole()
T = TypeVar("T")


def nats_url() -> str:
    """NATS_URL: the environment first, else the nearest `.run/env` (else one-line error)."""
    return connections().nats_url


def database_url() -> str:
    """DATABASE_URL: the environment first, else the nearest `.run/env` (else one-line error)."""
    return connections().database_url


def _url_or_fail(url: Callable[[], str]) -> str:
    try:
        return url()
    except PlatformUnavailable as unavailable:
        fail(str(unavailable))


def _running_platform() -> dict[str, str]:
    """What `pinworks run` wrote to the nearest `.run/env` (empty when there is none)."""
    from pinworks_cli.infra import find_run_env, read_env_file

    env_file = find_run_env()
    return read_env_file(env_file) if env_file else {}


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_command(coro)


async def _with_db(action: Callable[[Any], Awaitable[T]], *, write: bool = False) -> T:
    return await with_db(database_url(), action, write=write)


def submission_msg_id(ticket_id: str, payload: bytes) -> str:
    """Same payload twice is one message; a corrected payload for the same id is not dropped."""
    import hashlib

    return f"{ticket_id}:submitted:{hashlib.sha256(payload).hexdigest()[:16]}"


async def _publish_and_collect(
    payloads: list[tuple[str, bytes]], wait_seconds: float, progress: Progress | None = None
) -> dict[str, Outcome]:
    import asyncio

    from nats.js.api import DeliverPolicy

    from pinworks_cli.infra import connect_nats
    from pinworks_common.contracts import Outcome
    from pinworks_common.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, SUBMITTED, TICKETS_STREAM

    nc = await connect_nats(nats_url())
    js = nc.jetstream()
    wanted = {ticket_id for ticket_id, _ in payloads}
    outcomes: dict[str, Outcome] = {}
    done = asyncio.Event()
    task = progress.add_task("outcomes", total=len(wanted)) if progress else None

    async def on_outcome(msg: Any) -> None:
        try:
            outcome = Outcome.model_validate_json(msg.data)
        except ValueError:
            return
        if outcome.ticket_id in wanted and outcome.ticket_id not in outcomes:
            outcomes[outcome.ticket_id] = outcome
            if progress is not None and task is not None:
                progress.advance(task)
            if len(outcomes) == len(wanted):
                done.set()

    try:
        subscription = await js.subscribe(OUTCOME_WILDCARD, stream=OUTCOMES_STREAM, cb=on_outcome,
                                          ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
        try:
            for ticket_id, payload in payloads:
                await js.publish(SUBMITTED, payload, stream=TICKETS_STREAM,
                                 headers={"Nats-Msg-Id": submission_msg_id(ticket_id, payload)})
            if wait_seconds > 0 and wanted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=wait_seconds)
        finally:
            await subscription.unsubscribe()
    finally:
        await nc.close()
    return outcomes


def _print_outcome(outcome: Outcome) -> None:
    console.print_json(outcome.model_dump_json())


async def _submit_one(ticket_id: str, payload: bytes, wait_seconds: float) -> dict[str, Any]:
    """Publish one ticket and wait for whichever comes first: its outcome, or its rejection.

    A ticket whose id cannot be read gets no outcome (there is no id to publish it under); the
    classifier records it in `rejected_payloads` under the stream sequence JetStream gave the
    publish, so that row is watched too, and its reasons are reported as soon as it is written.
    """
    import asyncio

    from nats.js.api import DeliverPolicy
    from sqlalchemy import select

    from pinworks_cli.infra import connect_nats
    from pinworks_common.contracts import Outcome
    from pinworks_common.db.engine import create_engine
    from pinworks_common.db.tables import rejected_payloads
    from pinworks_common.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, SUBMITTED, TICKETS_STREAM

    nc = await connect_nats(nats_url())
    db_url = database_url()
    found: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def on_outcome(msg: Any) -> None:
        with contextlib.suppress(ValueError):
            outcome = Outcome.model_validate_json(msg.data)
            if outcome.ticket_id == ticket_id and not found.done():
                found.set_result({"outcome": outcome})

    stop = asyncio.Event()

    async def watch_rejections(seq: int) -> None:
        engine = create_engine(db_url, pool_size=1)
        try:
            while not stop.is_set():
                async with engine.connect() as conn:
                    row = (await conn.execute(select(rejected_payloads).where(
                        rejected_payloads.c.stream_seq == seq))).first()
                if row is not None:
                    if not found.done():
                        found.set_result({"rejected": dict(row._mapping)})
                    return
                # The CLI polls one indexed row, every 0.2 s until told to stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
        except Exception:  # the database is optional here: the outcome may still arrive
            return
        finally:
            await engine.dispose()

    try:
        js = nc.jetstream()
        subscription = await js.subscribe(OUTCOME_WILDCARD, stream=OUTCOMES_STREAM,
                                          cb=on_outcome, ordered_consumer=True,
                                          deliver_policy=DeliverPolicy.NEW)
        watcher = None
        try:
            ack = await js.publish(SUBMITTED, payload, stream=TICKETS_STREAM,
                                   headers={"Nats-Msg-Id": submission_msg_id(ticket_id, payload)})
            if ack.duplicate:
                return {"duplicate": ack.seq}
            if wait_seconds <= 0:
                return {"submitted": ack.seq}
            watcher = asyncio.create_task(watch_rejections(ack.seq))
            try:
                return {**await asyncio.wait_for(asyncio.shield(found), wait_seconds),
                        "seq": ack.seq}
            except TimeoutError:
                return {"timeout": ack.seq}
        finally:
            if watcher is not None:
                stop.set()  # not cancelled: a cancelled query would leave its connection open
                await watcher
            await subscription.unsubscribe()
    finally:
        await nc.close()


@app.command()
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
    result = _run(_submit_one(ticket_id, json.dumps(ticket).encode(), wait))
    if "outcome" in result:
        outcome = result["outcome"]
        _print_outcome(outcome)
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
                   f"{result['duplicate']}); nothing new was sent. See `pinworks audit {ticket_id}`")
    elif "timeout" in result:
        typer.echo(f"submitted {ticket_id} (stream seq {result['timeout']}); no outcome within "
                   f"{wait:g}s. Follow it with `pinworks audit {ticket_id}` or "
                   f"`pinworks audit --seq {result['timeout']}`")
        raise typer.Exit(1)
    else:
        typer.echo(f"submitted {ticket_id} (stream seq {result['submitted']})")


def read_replay_file(path: Path) -> list[tuple[str, bytes]]:
    """(ticket id, payload) per CSV row; the columns are described in `pinworks_cli.tickets_csv`."""
    from pinworks_cli.tickets_csv import read_ticket_rows

    return [(str(t["ticket_id"]), json.dumps(t).encode()) for t in read_ticket_rows(path)]


@app.command(help="Submit many tickets from a CSV and summarise outcomes and cost per business "
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

    payloads = read_replay_file(file)
    with Progress(console=console.get()) as progress:
        outcomes = _run(_publish_and_collect(payloads, wait, progress))
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


@app.command()
def audit(
    ticket_id: Annotated[str | None, typer.Argument(
        help="The ticket id (also finds a rejected payload that carried this id).")] = None,
    seq: Annotated[int | None, typer.Option(
        "--seq", help="Instead: the stream sequence `submit` printed for a rejected payload.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a ticket's whole trail: every decision with inputs, version, reason, cost, time."""
    from pinworks_cli.audit import rejected_trail, render_trail, ticket_trail

    if (ticket_id is None) == (seq is None):
        raise typer.BadParameter("give a TICKET_ID or --seq N (one of them)")
    if seq is not None:
        trail = _run(_with_db(lambda conn: rejected_trail(conn, seq)))
    else:
        assert ticket_id is not None
        trail = _run(_with_db(lambda conn: ticket_trail(conn, ticket_id)))
    if trail is None:
        what = f"stream seq {seq}" if seq is not None else f"ticket {ticket_id}"
        typer.echo(f"no {what} in the audit (nor among rejected payloads)", err=True)
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(trail, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render_trail(trail) + "\n")


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

    items, total = _run(_with_db(
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

    item = _run(_with_db(lambda conn: claim(
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
        _run(_with_db(lambda conn: release(conn, ticket_id, agent), write=True))
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
    from pinworks_escalation.queue import QueueError, resolve

    agent_cost = Decimal(os.environ.get("PINWORKS_AGENT_COST_USD", "1.50"))
    try:
        outcome = _run(_with_db(
            lambda conn: resolve(conn, ticket_id, agent, reply, agent_cost=agent_cost),
            write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    _print_outcome(outcome)


def render_queued(found: dict[str, Any]) -> str:
    """A queued ticket as an agent reads it: the customer's message first, then why it is here,
    what automation made of it, what it cost and who did what."""
    import textwrap

    envelope = found.get("envelope") or {}
    ticket = envelope.get("ticket") or {}
    classification = envelope.get("classification") or {}
    route = envelope.get("route") or {}
    draft = envelope.get("draft") or {}

    def wrapped(text: str, indent: str = "  ") -> list[str]:
        return [textwrap.fill(p, 96, initial_indent=indent, subsequent_indent=indent) or indent
                for p in str(text).splitlines()] or [indent]

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
    lines += wrapped(ticket.get("body", ""))
    lines += ["", "Why a person:"] + [f"  - {reason}" for reason in found.get("reasons", [])]
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
        lines += wrapped(draft.get("answer", ""))
    for attempt in envelope.get("attempts", []):
        lines.append(f"Tried {attempt.get('handler')}: {attempt.get('result')}, "
                     f"{attempt.get('reason')}")
    lines += ["", f"Cost so far: ${float(found.get('cost_usd') or 0):.6f}"
              + "".join(f"\n  {c['component']:<14} ${c['amount_usd']:.6f}"
                        for c in found.get("costs", []))]
    corrections = found.get("corrections") or []
    for correction in corrections:
        lines.append(f"Corrected: {correction}")
    if found.get("reply"):
        lines += ["", "Reply sent:"] + wrapped(found["reply"])
    actions = found.get("actions") or []
    if actions:
        lines += ["", "History:"] + [
            f"  {a['at']}  {a['actor_type']} {a['actor']}: {a['action']}" for a in actions]
    lines += ["", f"trace {found.get('trace_id') or '-'}; full trail: "
                  f"pinworks audit {found['ticket_id']}; raw: pinworks queue show "
                  f"{found['ticket_id']} --json"]
    return "\n".join(lines)


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

    found = _run(_with_db(load))
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
        item = _run(_with_db(lambda conn: reassign(
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
    from pinworks_common.intents import UnknownIntent, validate_intent

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
    from pinworks_common.intents import known_intents

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
        result = _run(_with_db(lambda conn: send_back(
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

    from pinworks_cli.bench import BENCH_UNIT_PREFIX
    from pinworks_common.db.tables import labelled_examples as table

    async def load(conn: Any) -> list[Any]:
        return list(await conn.execute(
            select(table).where(table.c.business_unit.not_like(f"{BENCH_UNIT_PREFIX}%"))
            .order_by(table.c.id)))

    rows = _run(_with_db(load))
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


@agent_app.command("add")
def agent_add(
    name: str,
    business_unit: Annotated[list[str], typer.Option(
        "--business-unit", help="A business unit whose tickets this agent works (repeatable).")],
    password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True,
        envvar="PINWORKS_AGENT_PASSWORD",
        help="At least 8 characters; prompted for when not given.")],
) -> None:
    """Create a console agent (or replace an agent's password and business units)."""
    from argon2 import PasswordHasher

    from pinworks_escalation.queue import QueueError, save_agent

    if len(password) < 8:
        console.print("[red]a password needs at least 8 characters[/]")
        raise typer.Exit(1)
    password_hash = PasswordHasher().hash(password)
    try:
        agent = _run(_with_db(
            lambda conn: save_agent(conn, name, password_hash, business_unit), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"agent {agent.name} works {', '.join(agent.business_units)}",
                  highlight=False)


@agent_app.command("list")
def agent_list() -> None:
    """List console agents and their business units."""
    from pinworks_escalation.queue import list_agents

    for agent in _run(_with_db(list_agents)):
        typer.echo(f"{agent.name}\t{', '.join(agent.business_units)}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from pinworks_cli.infra import describe_failure
    from pinworks_common.db.migrate import upgrade

    url = _url_or_fail(database_url)
    try:
        upgrade(url)
    except Exception as error:  # translated to one line, or re-raised as the bug it is
        message = describe_failure(error, connections())
        if message is None:
            raise
        fail(message)
    typer.echo("database schema is at head")


@app.command()
def asyncapi(
    out: Annotated[Path, typer.Option(help="Directory for one AsyncAPI JSON per service.")] = Path(
        "docs/asyncapi"),
) -> None:
    """Write the AsyncAPI documents generated from the five FastStream apps (no connection)."""
    from pinworks_cli.docs import write_asyncapi

    for path in write_asyncapi(out):
        console.print(f"wrote {path}")


@app.command()
def run() -> None:
    """Start the whole platform: embedded NATS and Postgres unless NATS_URL / DATABASE_URL."""
    from pinworks_cli.launcher import run_platform

    raise typer.Exit(run_platform())


@app.command()
def top(
    url: Annotated[list[str] | None, typer.Option(
        help="A service's metrics endpoint as NAME=URL (repeatable); default: the "
        "PINWORKS_METRICS_URLS of the environment or of the platform `pinworks run` started.",
    )] = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option(help="Print one snapshot and exit.")] = False,
) -> None:
    """Live figures from every service's /metrics: throughput, lag, latency, confidence, drift,
    routing, verifier failures, model endpoints, cost, budgets and the escalation queue."""
    import time

    from rich.live import Live

    from pinworks_cli.top import Snapshot, parse_urls, render, scrape_all

    spec = ",".join(url) if url else (os.environ.get("PINWORKS_METRICS_URLS")
                                      or _running_platform().get("PINWORKS_METRICS_URLS", ""))
    try:
        urls = parse_urls(spec)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if not urls:
        console.print("no metrics endpoints: start the platform with `pinworks run`, or give "
                      "--url NAME=URL")
        raise typer.Exit(2)
    scrapes, errors = scrape_all(urls)
    snapshot = Snapshot(scrapes, errors=errors)
    if once:
        console.print(render(snapshot))
        raise typer.Exit(0 if scrapes else 1)
    taken = time.monotonic()
    with (Live(render(snapshot), console=console.get(), refresh_per_second=4) as live,
          contextlib.suppress(KeyboardInterrupt)):
        while True:
            time.sleep(interval)
            scrapes, errors = scrape_all(urls)
            now = time.monotonic()
            snapshot = Snapshot(scrapes, snapshot.now, now - taken, errors)
            taken = now
            live.update(render(snapshot))


@app.command()
def bench(
    count: Annotated[int, typer.Option(min=1, help="Tickets to publish.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Tickets in flight at most.")] = 1000,
    time_limit: Annotated[float, typer.Option(min=1, help="Seconds the run may take at most.")
                          ] = 120,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Keep the run's rows in Postgres for inspection (default: deleted).")
    ] = False,
) -> None:
    """Publish COUNT synthetic tickets through the running platform; print throughput, latency,
    who answered, and the model hops' latency and tokens per second (from the audit).

    The tickets are marked synthetic and belong to the run's own business units
    (bench-RUN-retail, ...; the bench- prefix is reserved): no agent serves them, no real budget
    pays for them, cost reports and training examples leave them out, and the run's tickets leave
    the escalation queue when it ends (unless --keep)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pinworks_cli.bench import bench_units, cleanup_bench, format_result, run_bench

    run_id = uuid.uuid4().hex[:8]
    units = bench_units(run_id, ["retail", "business", "wealth"])
    nats = _url_or_fail(nats_url)
    db = connections().database
    columns = (TextColumn("bench {task.fields[run]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("outcomes"), TimeElapsedColumn())
    with Progress(*columns, console=console.get(), transient=True) as progress:
        task = progress.add_task("bench", total=count, run=run_id)
        result = _run(run_bench(nats, count, concurrency, units, time_limit=time_limit,
                                run_id=run_id, database_url=db,
                                on_outcome=lambda done: progress.update(task, completed=done)))
    console.print(format_result(result), highlight=False)
    if keep:
        typer.echo(f"kept: business units {', '.join(units)}; tickets bench-{run_id}-*")
        return
    deleted = _run(_with_db(lambda conn: cleanup_bench(conn, run_id), write=True))
    typer.echo(f"cleaned up run {run_id}: {deleted.get('escalations', 0)} synthetic "
               "escalations taken out of the queue; its audit and cost rows stay under the "
               f"{', '.join(units)} units, which cost reports leave out")


@app.command()
def chaos(
    short: Annotated[bool, typer.Option(help="The quick version `make test` runs.")] = False,
    soak: Annotated[float, typer.Option(
        min=0, help="Seconds of steady load at half of measured capacity afterwards.")] = 0,
) -> None:
    """The fault tier on a private platform: kills, NATS restart, Postgres outage, hostile
    corpus; prints its figures and exits non-zero when a check fails."""
    from pinworks_cli.chaos import FULL, SHORT, run_chaos

    reports = run_chaos(SHORT if short else FULL, soak_seconds=soak)
    for chaos_report in reports:
        console.print(chaos_report.format(), highlight=False)
    raise typer.Exit(0 if all(chaos_report.passed for chaos_report in reports) else 1)


def _mount_classifier() -> None:
    try:
        from pinworks_classifier.cli import classifier_app
    except ImportError:
        return
    app.add_typer(classifier_app, name="classifier", help="Train and evaluate the classifier.")


_mount_classifier()

from pinworks_cli import policy_cli, report  # noqa: E402  (mounted last: the sub-app imports main lazily)

app.add_typer(report.report_app, name="report")
app.add_typer(policy_cli.policy_app, name="policy")
plain_usage(app)
