"""`pinworks`: run the platform, submit and replay tickets, read the audit, work the queue."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import json
import os
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats
import typer
from nats.js.api import DeliverPolicy
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pinworks_common.contracts import Outcome
from pinworks_common.db.engine import create_engine
from pinworks_common.subjects import (
    OUTCOME_WILDCARD,
    OUTCOMES_STREAM,
    SUBMITTED,
    TICKETS_STREAM,
)

app = typer.Typer(help="pinworks: a team of AI components answering support tickets.",
                  no_args_is_help=True)
queue_app = typer.Typer(help="Work the human escalation queue.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents of the escalation console.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")
app.add_typer(agent_app, name="agent")
app.add_typer(db_app, name="db")

console = Console()
T = TypeVar("T")
RUN_ENV_FILE = Path(".run") / "env"


def _running_platform() -> dict[str, str]:
    """The URLs `pinworks run` wrote to .run/env (lines `export NAME='value'`)."""
    if not RUN_ENV_FILE.exists():
        return {}
    found = {}
    for line in RUN_ENV_FILE.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name.strip()] = value.strip().strip("'\"")
    return found


def connection_settings() -> tuple[str, str]:
    """NATS and Postgres URLs: the environment first, else the platform `pinworks run` started."""
    running = _running_platform()
    nats_url = os.environ.get("NATS_URL") or running.get("NATS_URL")
    database_url = os.environ.get("DATABASE_URL") or running.get("DATABASE_URL")
    return (nats_url or "nats://127.0.0.1:4222",
            database_url or "postgresql://postgres@127.0.0.1:5432/postgres")


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _with_db(action: Callable[[Any], Awaitable[T]], *, write: bool = False) -> T:
    engine = create_engine(connection_settings()[1], pool_size=1)
    try:
        if write:
            async with engine.begin() as conn:
                return await action(conn)
        async with engine.connect() as conn:
            return await action(conn)
    finally:
        await engine.dispose()


def submission_msg_id(ticket_id: str, payload: bytes) -> str:
    """Same payload twice is one message; a corrected payload for the same id is not dropped."""
    return f"{ticket_id}:submitted:{hashlib.sha256(payload).hexdigest()[:16]}"


async def _publish_and_collect(
    payloads: list[tuple[str, bytes]], wait_seconds: float, progress: Progress | None = None
) -> dict[str, Outcome]:
    nc = await nats.connect(connection_settings()[0])
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
        await nc.drain()
    return outcomes


def _print_outcome(outcome: Outcome) -> None:
    console.print_json(outcome.model_dump_json())


@app.command()
def submit(
    body: Annotated[str, typer.Argument(help="The customer's message.")],
    ticket_id: Annotated[str | None, typer.Option(help="Idempotency key (default: generated).")] = None,
    business_unit: Annotated[str, typer.Option(help="Who pays for the ticket.")] = "retail",
    subject: Annotated[str | None, typer.Option(help="Subject line.")] = None,
    channel: Annotated[str | None, typer.Option(help="email, chat, ...")] = None,
    customer_id: Annotated[str | None, typer.Option()] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome (0: don't).")] = 30,
) -> None:
    """Submit one ticket and print its outcome."""
    ticket_id = ticket_id or f"cli-{uuid.uuid4().hex[:12]}"
    ticket: dict[str, Any] = {"ticket_id": ticket_id, "business_unit": business_unit, "body": body}
    for key, value in (("subject", subject), ("channel", channel), ("customer_id", customer_id)):
        if value is not None:
            ticket[key] = value
    if metadata:
        ticket["metadata"] = json.loads(metadata)
    outcomes = _run(_publish_and_collect([(ticket_id, json.dumps(ticket).encode())], wait))
    if ticket_id in outcomes:
        _print_outcome(outcomes[ticket_id])
    elif wait > 0:
        console.print(f"[yellow]submitted {ticket_id}; no outcome within {wait:.0f}s "
                      f"(see `pinworks audit {ticket_id}`)[/]")
        raise typer.Exit(1)
    else:
        console.print(f"submitted {ticket_id}")


def read_replay_file(path: Path) -> list[tuple[str, bytes]]:
    """Rows of a CSV (`body` required; ticket_id, business_unit, subject, channel, customer_id
    optional). A missing ticket_id is derived from file and row, so a replay is idempotent."""
    payloads = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or ("body" not in reader.fieldnames
                                         and "text" not in reader.fieldnames):
            raise typer.BadParameter(f"{path}: needs a `body` (or `text`) column")
        stem = "".join(c if c.isalnum() or c in "._:-" else "-" for c in path.stem)[:80]
        for number, row in enumerate(reader, start=1):
            ticket: dict[str, Any] = {
                "ticket_id": row.get("ticket_id") or f"{stem}-{number}",
                "business_unit": row.get("business_unit") or "retail",
                "body": row.get("body") or row.get("text") or "",
            }
            for key in ("subject", "channel", "customer_id"):
                if row.get(key):
                    ticket[key] = row[key]
            payloads.append((ticket["ticket_id"], json.dumps(ticket).encode()))
    return payloads


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of tickets.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for all outcomes.")] = 300,
) -> None:
    """Submit many tickets from a CSV and summarise outcomes and cost per business unit."""
    payloads = read_replay_file(file)
    with Progress(console=console) as progress:
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
    missing = len(payloads) - len(outcomes)
    if missing:
        console.print(f"[yellow]{missing} tickets without an outcome yet[/]")
        raise typer.Exit(1)


@app.command()
def audit(
    ticket_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a ticket's whole trail: every decision with inputs, version, reason, cost, time."""
    from pinworks_cli.audit import render_trail, ticket_trail

    trail = _run(_with_db(lambda conn: ticket_trail(conn, ticket_id)))
    if trail is None:
        console.print(f"[red]no ticket {ticket_id}[/]", highlight=False)
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


@queue_app.command("list")
def queue_list(
    business_unit: UnitOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List open and claimed escalations, most urgent first."""
    from pinworks_common.queue import list_queue

    items = _run(_with_db(lambda conn: list_queue(conn, business_units=_units(business_unit))))
    if as_json:
        sys.stdout.write(json.dumps([i.as_dict() for i in items], indent=2) + "\n")
        return
    table = Table(title=f"{len(items)} escalated tickets")
    for column in ("ticket", "unit", "status", "priority", "SLA due", "claimed by", "reasons"):
        table.add_column(column)
    for item in items:
        due = f"{item.sla_due_at:%Y-%m-%d %H:%M}" if item.sla_due_at else "-"
        table.add_row(item.ticket_id, item.business_unit, item.status, str(item.priority),
                      due + (" OVERDUE" if item.overdue() else ""),
                      item.holder() or "-", "; ".join(item.reasons)[:80])
    console.print(table)


@queue_app.command("claim")
def queue_claim(
    agent: AgentOption,
    ticket_id: Annotated[str | None, typer.Argument(help="A ticket; default the most urgent.")] = None,
    business_unit: UnitOption = None,
    lease_minutes: Annotated[int, typer.Option(min=1, max=480)] = 15,
) -> None:
    """Claim a ticket with a lease; nobody else can take it until you release it or it expires."""
    from datetime import timedelta

    from pinworks_common.queue import claim

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
    from pinworks_common.queue import QueueError, release

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
    from pinworks_common.queue import QueueError, resolve

    agent_cost = Decimal(os.environ.get("PINWORKS_AGENT_COST_USD", "1.50"))
    try:
        outcome = _run(_with_db(
            lambda conn: resolve(conn, ticket_id, agent, reply, agent_cost=agent_cost),
            write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    _print_outcome(outcome)


@queue_app.command("show")
def queue_show(
    ticket_id: str,
    business_unit: UnitOption = None,
) -> None:
    """Print a queued ticket with its whole context (classification, route, draft, cost...)."""
    from pinworks_common.queue import get_item, ticket_context

    async def load(conn: Any) -> dict[str, Any] | None:
        item = await get_item(conn, ticket_id, business_units=_units(business_unit))
        if item is None:
            return None
        return {**item.as_dict(), "envelope": item.context.get("envelope", {}),
                "corrections": item.context.get("corrections", []), "reply": item.reply,
                **(await ticket_context(conn, ticket_id))}

    found = _run(_with_db(load))
    if found is None:
        console.print(f"[red]no escalated ticket {ticket_id}[/]", highlight=False)
        raise typer.Exit(1)
    sys.stdout.write(json.dumps(found, indent=2, default=str) + "\n")


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

    from pinworks_common.queue import QueueError, reassign

    try:
        item = _run(_with_db(lambda conn: reassign(
            conn, ticket_id, agent, to, business_units=_units(business_unit),
            lease=timedelta(minutes=lease_minutes)), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"{ticket_id} is now held by {item.claimed_by} until "
                  f"{item.lease_expires_at:%H:%M:%S}", highlight=False)


@queue_app.command("send-back")
def queue_send_back(
    ticket_id: str,
    agent: AgentOption,
    intent: Annotated[str, typer.Option("--intent", help="The intent the ticket really has.")],
    business_unit: UnitOption = None,
) -> None:
    """Correct the intent of a ticket you hold: kept as a labelled example for retraining the
    classifier; the ticket returns to the queue."""
    from pinworks_common.queue import QueueError, send_back

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
    retraining the classifier."""
    from sqlalchemy import select

    from pinworks_common.db.tables import labelled_examples as table

    async def load(conn: Any) -> list[Any]:
        return list(await conn.execute(select(table).order_by(table.c.id)))

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

    from pinworks_common.queue import QueueError, save_agent

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
    from pinworks_common.queue import list_agents

    for agent in _run(_with_db(list_agents)):
        console.print(f"{agent.name}\t{', '.join(agent.business_units)}", highlight=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from pinworks_common.db.migrate import upgrade

    upgrade(connection_settings()[1])
    console.print("database schema is at head")


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
    with (Live(render(snapshot), console=console, refresh_per_second=4) as live,
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
    count: Annotated[int, typer.Option(min=1)] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Tickets in flight at most.")] = 1000,
    time_limit: Annotated[float, typer.Option(min=1, help="Seconds the run may take.")] = 120.0,
) -> None:
    """Publish COUNT tickets through the running platform; print throughput, latency, who
    answered, and the model hops' latency and tokens per second (from the audit)."""
    from pinworks_cli.bench import format_result, run_bench

    nats_url, database_url = connection_settings()
    result = _run(run_bench(nats_url, count, concurrency, ["retail", "business", "wealth"],
                            time_limit=time_limit, database_url=database_url))
    console.print(format_result(result), highlight=False)


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
