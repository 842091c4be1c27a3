"""The platform commands: `run` it, `db upgrade` its schema and `db roles` its grants, watch it
(`top`), measure it (`bench`), break it on purpose (`chaos`), and document it (`asyncapi`).

Registered on the `pinworks` app by `pinworks_cli.main`; everything heavy loads inside the
commands.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pinworks_common.commands.platform import (
    PlatformUnavailable,
    connections,
    database_url,
    fail,
    nats_url,
    run_command,
    with_platform_db,
)
from pinworks_common.commands.terminal import LazyConsole

if TYPE_CHECKING:
    from pinworks_cli.bench_session import BenchPlan, Target

console = LazyConsole()


def _url_or_fail(url: Callable[[], str]) -> str:
    try:
        return url()
    except PlatformUnavailable as unavailable:
        fail(str(unavailable))


def _running_platform() -> dict[str, str]:
    """What `pinworks run` wrote to the nearest `.run/env` (empty when there is none)."""
    from pinworks_common.commands.platform import find_run_env, read_env_file

    env_file = find_run_env()
    return read_env_file(env_file) if env_file else {}


def _on_database(action: Callable[[str], None]) -> None:
    """`action(DATABASE_URL)`, a failure to reach or log in translated to one line."""
    from pinworks_common.commands.platform import describe_failure

    url = _url_or_fail(database_url)
    try:
        action(url)
    except Exception as error:  # translated to one line, or re-raised as the bug it is
        message = describe_failure(error, connections())
        if message is None:
            raise
        fail(message)


def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL (then its roles' grants, as `db roles`)."""
    from pinworks_common.db.migrate import upgrade

    _on_database(upgrade)
    typer.echo("database schema is at head")


def db_roles(
    show: Annotated[bool, typer.Option(
        "--show", help="Print the roles x tables matrix and exit (no connection).")] = False,
) -> None:
    """Make DATABASE_URL's roles and grants match pinworks_common.db.roles: every table owned by
    pinworks_migrations, each role exactly its privileges (run as that owner or a superuser;
    `db upgrade` does it too). Logins and passwords are the deployment's (README)."""
    from pinworks_common.db.roles import matrix_markdown

    if show:
        typer.echo(matrix_markdown())
        return
    from pinworks_common.db.migrate import apply_roles

    _on_database(apply_roles)
    typer.echo("roles and grants match pinworks_common.db.roles")


def asyncapi(
    out: Annotated[Path, typer.Option(help="Directory for one AsyncAPI JSON per service.")] = Path(
        "docs/asyncapi"),
) -> None:
    """Write the AsyncAPI documents generated from the five FastStream apps (no connection)."""
    from pinworks_cli.docs import write_asyncapi

    for path in write_asyncapi(out):
        console.print(f"wrote {path}")


def run() -> None:
    """Start the whole platform: embedded NATS and Postgres unless NATS_URL / DATABASE_URL."""
    from pinworks_cli.launcher import run_platform

    raise typer.Exit(run_platform())


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


def bench(
    count: Annotated[int, typer.Option(min=1, help="Tickets to publish at full load.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Tickets in flight at most.")] = 1000,
    time_limit: Annotated[float, typer.Option(min=1, help="Seconds the run may take at most.")
                          ] = 120,
    paced_rate: Annotated[float, typer.Option(
        min=0.1, help="Tickets per second of the paced run (latency without a queue).")] = 20,
    paced_count: Annotated[int, typer.Option(
        min=0, help="Tickets of the paced run (0: none).")] = 200,
    baseline_count: Annotated[int, typer.Option(
        min=0, help="Tickets of each in-process baseline run (0: none); 720 is two whole "
        "cycles of the bench's texts.")] = 720,
    rounds: Annotated[int, typer.Option(
        min=1, help="Full-load rounds COUNT is split into, the in-process baseline run before "
        "the first and after each.")] = 3,
    warmup: Annotated[int, typer.Option(
        min=0, help="Tickets each side decides, unmeasured, before the first measurement.")
    ] = 300,
    private: Annotated[bool, typer.Option(
        "--private", help="Run on the bench's own platform (embedded NATS, Postgres and the "
        "five services, removed afterwards) instead of the running one.")] = False,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Keep the run's rows in Postgres for inspection (default: deleted).")
    ] = False,
) -> None:
    """Publish COUNT synthetic tickets through the platform at full load (in ROUNDS, after
    WARMUP unmeasured ones), then PACED_COUNT at PACED_RATE; print throughput, latency of both,
    who answered, the model hops, CPU-ms per ticket of each process (services, NATS, Postgres),
    the same tickets decided in this process (the in-process baseline, run before the first
    round and after each) and the overhead ratio of the two, its median and range over the
    rounds.

    The tickets are marked synthetic and belong to the run's own business units
    (bench-RUN-retail, ...; the bench- prefix is reserved): no agent serves them, no real budget
    pays for them, cost reports and training examples leave them out, and the run's tickets leave
    the escalation queue when it ends (unless --keep)."""
    from pinworks_cli.bench_session import BenchPlan, private_platform, running_target
    from pinworks_common.settings import CommonSettings

    plan = BenchPlan(count, concurrency, time_limit, paced_rate, paced_count, baseline_count,
                     CommonSettings.model_fields["batch_size"].default, rounds=rounds,
                     warmup=warmup)
    if private:
        with private_platform() as target:
            _bench_on(plan, target, keep=True)
        return
    _bench_on(plan, running_target(_url_or_fail(nats_url), connections().database), keep=keep)


def _bench_on(plan: BenchPlan, target: Target, *, keep: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pinworks_cli.bench import bench_units, cleanup_bench
    from pinworks_cli.bench_report import format_run
    from pinworks_cli.bench_session import measure

    run_id = uuid.uuid4().hex[:8]
    units = bench_units(run_id, ["retail", "business", "wealth"])
    columns = (TextColumn("bench {task.fields[run]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("outcomes"), TimeElapsedColumn())
    with Progress(*columns, console=console.get(), transient=True) as progress:
        task = progress.add_task("bench", total=plan.count, run=run_id)
        result = measure(plan, target, run_id, units, run_command,
                         on_outcome=lambda done: progress.update(task, completed=done))
    console.print(format_run(result), highlight=False)
    if keep:
        if target.name == "running":
            typer.echo(f"kept: business units {', '.join(units)}; tickets bench-{run_id}-*")
        return
    deleted = run_command(with_platform_db(lambda conn: cleanup_bench(conn, run_id), write=True))
    typer.echo(f"cleaned up run {run_id}: {deleted.get('escalations', 0)} synthetic "
               "escalations taken out of the queue; its audit and cost rows stay under the "
               f"{', '.join(units)} units, which cost reports leave out")


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
