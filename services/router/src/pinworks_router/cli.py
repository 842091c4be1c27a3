"""`pinworks policy …`: simulate a routing policy offline; apply, show, list and diff rollouts.

The `pinworks` CLI mounts `policy_app` through the entry point `pinworks.cli` / `policy`. The
policy modules and NATS load inside the commands, so mounting costs nothing until one runs.
"""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pinworks_common.commands.platform import fail, run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole
from pinworks_common.commands.tickets_csv import COLUMNS_HELP, read_ticket_rows
from pinworks_contracts.subjects import ROUTER_POLICY_BUCKET, ROUTER_POLICY_KEY, ROUTER_SHADOW_KEY

if TYPE_CHECKING:
    from pinworks_contracts.messages import Classification, TicketSubmission
    from pinworks_router.policy import Policy
    from pinworks_router.simulate import Simulation

policy_app = typer.Typer(help="Routing policy: simulate, apply, show, history, diff.",
                         no_args_is_help=True)
console = LazyConsole()


class Format(StrEnum):
    table = "table"
    json = "json"


def read_tickets_csv(path: Path) -> list[TicketSubmission]:
    """Tickets from a CSV (columns as in `pinworks_common.commands.tickets_csv`); a bad row is an error
    naming the row, not a silent skip."""
    from pydantic import ValidationError

    from pinworks_contracts.messages import TicketSubmission

    tickets = []
    for number, data in enumerate(read_ticket_rows(path, default_id="row-{line}"), start=1):
        data.setdefault("metadata", {})
        try:
            tickets.append(TicketSubmission.model_validate(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise typer.BadParameter(f"{path} line {number + 1}: {field}: {first['msg']}"
                                     ) from None
    return tickets


def _plain_error(error: Exception) -> str:
    """The error without pydantic's "Value error, " prefix on each problem."""
    return str(error).replace("Value error, ", "")


def _load(path: Path | None) -> Policy:
    from pinworks_router.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        raise typer.BadParameter(_plain_error(exc)) from None


@policy_app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="Policy YAML.")]) -> None:
    """Check a policy; print its version or the exact error."""
    policy = _load(file)
    console.print(f"{file}: ok, {len(policy.rules)} rules, version {policy.version}",
                  highlight=False)


@policy_app.command("simulate")
def simulate_command(
    new: Annotated[Path, typer.Argument(help="Candidate policy YAML.")],
    tickets: Annotated[Path, typer.Option("--tickets", exists=True, dir_okay=False,
                                          help=COLUMNS_HELP)],
    current: Annotated[Path | None, typer.Option(
        "--current", help="Policy to compare against; default: the router's shipped policy.")
    ] = None,
    artifact_dir: Annotated[Path | None, typer.Option(
        help="Classifier artifact; default: the model shipped with the classifier.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Classify the tickets and route them with both policies, offline: what changes, what it costs.

    Costs are estimates of each policy's first-choice handler (fallbacks not simulated), prices
    from SPECIALISTS_PRICES or the default table (pinworks_common.pricing)."""
    from pinworks_common.pricing import load_prices
    from pinworks_router.simulate import simulate

    new_policy, current_policy = _load(new), _load(current)
    try:
        prices = load_prices()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    submissions = read_tickets_csv(tickets)
    classifications, classifier_version = _classify(submissions, artifact_dir)
    result = simulate(current_policy, new_policy, submissions, classifications, prices)
    if fmt is Format.json:
        typer.echo(json.dumps({**result.as_dict(), "classifier_version": classifier_version},
                              indent=2))
        return
    _print_simulation(result, classifier_version)


def _classify(submissions: list[TicketSubmission], artifact_dir: Path | None
              ) -> tuple[list[Classification], str]:
    """The installed classifier's verdict on each ticket (found by entry point, not imported)."""
    from pinworks_common.commands.plugins import NotInstalled, offline_classifier

    try:
        classify = offline_classifier()
    except NotInstalled as missing:
        raise typer.BadParameter(str(missing)) from None
    return classify(submissions, artifact_dir)


def _print_simulation(result: Simulation, classifier_version: str) -> None:
    from rich.table import Table

    console.print(f"current {result.current_version} → new {result.new_version} "
                  f"(classifier {classifier_version})", highlight=False)
    share = result.changed / result.tickets if result.tickets else 0.0
    console.print(f"{result.changed} of {result.tickets} decisions change handler ({share:.1%}); "
                  f"{result.rule_changed} change rule", highlight=False)
    if result.transitions:
        moves = Table(title="Where decisions move")
        for column in ("from", "to", "tickets"):
            moves.add_column(column, justify="right" if column == "tickets" else "left")
        for (before, after), n in sorted(result.transitions.items(), key=lambda kv: -kv[1]):
            moves.add_row(before, after, str(n))
        console.print(moves)
    costs = Table(title="Projected cost per business unit (USD)")
    for column in ("business unit", "tickets", "current", "new", "all-frontier"):
        costs.add_column(column, justify="left" if column == "business unit" else "right")

    def row(name: str, tickets_: int, *amounts: Decimal, bold: bool = False) -> None:
        costs.add_row(name, str(tickets_), *(f"{a:.6f}" for a in amounts),
                      style="bold" if bold else None)

    for unit, cost in sorted(result.costs.items()):
        row(unit, cost.tickets, cost.current, cost.new, cost.all_frontier)
    total = result.total()
    row("TOTAL", total.tickets, total.current, total.new, total.all_frontier, bold=True)
    console.print(costs)


def _parse(text: str, source: str) -> Policy:
    from pinworks_router.policy import PolicyError, parse_policy

    try:
        return parse_policy(text, source)
    except PolicyError as exc:
        raise typer.BadParameter(_plain_error(exc)) from None


BucketOption = Annotated[str, typer.Option(
    "--bucket", help="NATS KV bucket of the live policy (routers' ROUTER_POLICY_BUCKET).")]


async def _kv(bucket: str) -> tuple[Any, Any]:
    from pinworks_common.commands.platform import connect_nats, nats_url
    from pinworks_router.rollout import policy_bucket

    nc = await connect_nats(nats_url())
    return nc, await policy_bucket(nc.jetstream(), bucket)


async def apply_policy(path: Path, text: str, applied_by: str, bucket: str,
                       shadow: bool = False) -> tuple[Policy, int, int]:
    """Validate, append to the Postgres history and publish to the KV bucket, in that order:
    routers load only a value whose history row is committed (policy_trust), so the row
    commits first. A shadow policy is recorded with source `shadow:FILE` and published under
    the shadow key."""
    import dataclasses

    from pinworks_router.rollout import publish_policy, record_policy

    policy = _parse(text, str(path))
    key = ROUTER_POLICY_KEY
    if shadow:
        policy, key = dataclasses.replace(policy, source=f"shadow:{path}"), ROUTER_SHADOW_KEY
    nc, kv = await _kv(bucket)
    try:
        row_id = await with_platform_db(
            lambda conn: record_policy(conn, policy, text, applied_by), write=True)
        try:
            revision = await publish_policy(kv, policy, text, key)
        except Exception as exc:  # the row stays (append-only): say so, then fail
            fail(f"{policy.version} is recorded (history #{row_id}) but could not be put in "
                 f"bucket {bucket}: {exc}; routers keep their policy: apply it again")
    finally:
        await nc.close()
    return policy, row_id, revision


@policy_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Policy YAML.")],
    bucket: BucketOption = ROUTER_POLICY_BUCKET,
    applied_by: Annotated[str, typer.Option(help="Who applies it (recorded in history).")] = "",
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Run it beside the live policy, recording decisions, without acting.")
    ] = False,
) -> None:
    """Validate FILE, record it in the history and roll it out to every router replica."""
    import getpass

    text = file.read_text(encoding="utf-8")
    policy, row_id, revision = run_command(
        apply_policy(file, text, applied_by or getpass.getuser(), bucket, shadow))
    role = "shadow" if shadow else "live"
    console.print(f"applied {policy.version} ({len(policy.rules)} rules) as {role} policy, "
                  f"history #{row_id}, revision {revision} in bucket {bucket}", highlight=False)


@policy_app.command("replicas")
def replicas(bucket: BucketOption = ROUTER_POLICY_BUCKET) -> None:
    """Which policy version each router replica reported running (live and shadow)."""
    from pinworks_router.rollout import replica_states

    async def states() -> list[dict[str, Any]]:
        nc, kv = await _kv(bucket)
        try:
            return await replica_states(kv)
        finally:
            await nc.close()

    rows = run_command(states())
    if not rows:
        typer.echo(f"no router replica has reported to bucket {bucket}")
        return
    typer.echo("replica\tkey\tversion\treported at\tlast refused")
    for row in rows:
        refused = "; ".join(row.get("rejected") or []) or "-"
        typer.echo(f"{row['replica']}\t{row['key']}\t{row['version'] or '-'}\t{row['at']}\t"
                   f"{refused[:200]}")


@policy_app.command("shadow-clear")
def shadow_clear(bucket: BucketOption = ROUTER_POLICY_BUCKET) -> None:
    """Stop running a shadow policy (routers drop it at once)."""

    async def clear() -> None:
        nc, kv = await _kv(bucket)
        try:
            await kv.delete(ROUTER_SHADOW_KEY)
        finally:
            await nc.close()

    run_command(clear())
    console.print(f"shadow policy cleared in bucket {bucket}", highlight=False)


async def shadow_summary(conn: Any, since: Any) -> dict[str, Any]:
    """Agreement of shadow decisions with the live ones since `since`, per shadow version."""
    from sqlalchemy import select

    from pinworks_common.db.tables import decisions
    from pinworks_router.stage import SHADOW_STAGE

    rows = (await conn.execute(
        select(decisions.c.version, decisions.c.inputs, decisions.c.output)
        .where(decisions.c.stage == SHADOW_STAGE, decisions.c.created_at >= since))).all()
    versions: dict[str, dict[str, Any]] = {}
    for row in rows:
        summary = versions.setdefault(row.version, {"tickets": 0, "disagree": 0, "moves": {}})
        summary["tickets"] += 1
        if not row.output.get("agrees"):
            summary["disagree"] += 1
            move = f"{row.inputs.get('live_handler')} -> {row.output.get('handler')}"
            summary["moves"][move] = summary["moves"].get(move, 0) + 1
    return versions


@policy_app.command("shadow-report")
def shadow_report(
    since: Annotated[str, typer.Option(help="ISO date/datetime (UTC).")] = "",
) -> None:
    """How often the shadow policy disagreed with the live one, and where it would send tickets."""
    from datetime import UTC, datetime, timedelta

    from pinworks_common.commands.options import parse_when

    start = parse_when(since) if since else datetime.now(UTC) - timedelta(days=7)
    versions = run_command(with_platform_db(lambda conn: shadow_summary(conn, start)))
    if not versions:
        typer.echo(f"no shadow decisions since {start.isoformat()}")
        return
    for version, summary in versions.items():
        share = summary["disagree"] / summary["tickets"]
        typer.echo(f"shadow {version}: {summary['tickets']} tickets, {summary['disagree']} "
                   f"disagree ({share:.1%})")
        for move, n in sorted(summary["moves"].items(), key=lambda kv: -kv[1]):
            typer.echo(f"  {move}: {n}")


@policy_app.command("show")
def show(
    version: Annotated[str | None, typer.Argument(
        help="A version from `policy history`; default: the live policy.")] = None,
    bucket: BucketOption = ROUTER_POLICY_BUCKET,
) -> None:
    """Print the live policy (or one from the history) with its version."""
    text, label = _resolve(version or "live", bucket)
    typer.echo(f"# {label}")
    typer.echo(text, nl=not text.endswith("\n"))


def _resolve(ref: str, bucket: str) -> tuple[str, str]:
    """The text and a label of `live`, a file path, or a version from the history."""
    path = Path(ref)
    if ref != "live" and path.is_file():
        text = path.read_text(encoding="utf-8")
        return text, f"{path} {_parse(text, ref).version}"
    return run_command(_policy_text(ref, bucket))


async def _policy_text(ref: str, bucket: str) -> tuple[str, str]:
    """`live` or a version from the history."""
    from pinworks_router.rollout import live_policy_text, policy_by_version

    if ref == "live":
        nc, kv = await _kv(bucket)
        try:
            text = await live_policy_text(kv)
        finally:
            await nc.close()
        if text is None:
            raise typer.BadParameter(f"no live policy in bucket {bucket!r}: routers use their "
                                     "policy file; `pinworks policy apply FILE` sets one")
        return text, f"live {_parse(text, 'live').version}"
    applied = await with_platform_db(lambda conn: policy_by_version(conn, ref))
    if applied is None:
        raise typer.BadParameter(f"{ref!r} is neither `live`, a file, nor a version in the history")
    return applied.content, (f"{applied.version} applied {applied.created_at:%Y-%m-%d %H:%M:%S} "
                             f"by {applied.applied_by}")


@policy_app.command("history")
def history(limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """Applied policies, newest first (tab-separated)."""
    from pinworks_router.policy import parse_policy
    from pinworks_router.rollout import policy_history

    rows = run_command(with_platform_db(lambda conn: policy_history(conn, limit)))
    typer.echo("#\tversion\tapplied (UTC)\tby\trules\tsource")
    for row in rows:
        typer.echo(f"{row.id}\t{row.version}\t{row.created_at:%Y-%m-%d %H:%M:%S}\t"
                   f"{row.applied_by}\t{len(parse_policy(row.content).rules)}\t{row.source}")


@policy_app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="`live`, a version from the history, or a file.")],
    new: Annotated[str, typer.Argument(help="`live`, a version from the history, or a file.")],
    bucket: BucketOption = ROUTER_POLICY_BUCKET,
) -> None:
    """Unified diff of two policies; exit 1 when they differ (like diff)."""
    import difflib

    (old_text, old_label), (new_text, new_label) = _resolve(old, bucket), _resolve(new, bucket)
    lines = list(difflib.unified_diff(old_text.splitlines(keepends=True),
                                      new_text.splitlines(keepends=True), old_label, new_label))
    if not lines:
        typer.echo(f"no difference ({old_label} = {new_label})")
        return
    typer.echo("".join(lines), nl=False)
    raise typer.Exit(1)


@policy_app.command("calibrate")
def calibrate_command(
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="Where to write the policy.")],
    policy: Annotated[Path | None, typer.Argument(
        help="Policy to calibrate; default: the router's shipped policy.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder holding calibration/predictions.csv; default: the classifier's data.")] = None,
    max_wrong_rate: Annotated[float | None, typer.Option(
        help="Overrides the policy's error_budget.max_wrong_rate.")] = None,
    confidence: Annotated[float | None, typer.Option(
        help="Overrides the policy's error_budget.confidence.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    method: Annotated[str, typer.Option(
        help="scored: one learned family of per-intent thresholds, certified on a held-apart "
             "part (default); cells: a threshold grid per cell, Bonferroni across cells.")
    ] = "scored",
    second_opinion_margin: Annotated[str | None, typer.Option(
        help="Simulate the verifier's second-opinion check (VERIFIER_SECOND_OPINION) at this "
             "margin, or 'learn': chosen on the learn part; reads calibration/second_opinion.csv.")
    ] = None,
) -> None:
    """Derive the confidence thresholds that honour the policy's error budget and write them."""
    from pinworks_router.calibration.cli import run_calibrate

    run_calibrate(out, policy, data_dir, max_wrong_rate, confidence, fmt.value, method,
                  second_opinion_margin)
