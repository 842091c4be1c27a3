"""`pinworks quality …`: the agents' quality review of automatic answers, and loosening.

Automatic answers reach agents here: the escalation service's quality sample queues a share of
them (`ESCALATION_QUALITY_SAMPLE_RATE`), and an agent marks each right or wrong (with the intent
that was right). The router's quality guard estimates each business unit's and intent group's
wrong-answer rate from the verdicts and tightens a scope whose upper bound passes the policy's
error budget; only `pinworks quality loosen` undoes that, and it is recorded.
The `pinworks` CLI mounts `quality_app` through the entry point `pinworks.cli` / `quality`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

quality_app = typer.Typer(help="Quality review of automatic answers.", no_args_is_help=True)
console = LazyConsole()

UnitOption = Annotated[list[str] | None, typer.Option(
    "--business-unit", help="Only these business units (repeatable).")]


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]{error}[/]", highlight=False)
    return typer.Exit(1)


@quality_app.command("list")
def quality_list(
    business_unit: UnitOption = None,
    status: Annotated[str, typer.Option(help="pending, right, wrong or all.")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Automatic answers in the quality review (oldest first)."""
    from pinworks_common.quality import store

    if status not in ("pending", "right", "wrong", "all"):
        raise typer.BadParameter("status is pending, right, wrong or all")
    reviews = run_command(with_platform_db(lambda conn: store.list_reviews(
        conn, status=None if status == "all" else status, business_units=business_unit,
        limit=limit)))
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in reviews], indent=2) + "\n")
        return
    if not reviews:
        typer.echo(f"no {status} quality reviews")
    for r in reviews:
        verdict = r.status + (f" -> {r.correct_intent}" if r.correct_intent else "")
        typer.echo(f"{r.id}\t{r.ticket_id}\t{r.business_unit}\t{r.intent}\t{r.handler}\t"
                   f"{r.source}\t{verdict}")


@quality_app.command("show")
def quality_show(review_id: int) -> None:
    """One review: the ticket's automatic answer and any verdict."""
    from pinworks_common.quality import store

    try:
        review = run_command(with_platform_db(lambda conn: store.get_review(conn, review_id)))
    except store.QualityError as error:
        raise _fail(error) from None
    for name, value in review.as_dict().items():
        typer.echo(f"{name}: {'-' if value is None else value}")


@quality_app.command("mark")
def quality_mark(
    review_id: int,
    verdict: Annotated[str, typer.Argument(help="right or wrong")],
    agent: Annotated[str, typer.Option("--agent", help="Your agent id.")],
    intent: Annotated[str | None, typer.Option(
        "--intent", help="The intent that was right (for a wrong answer).")] = None,
) -> None:
    """Mark an automatic answer right, or wrong with the intent that was right."""
    from pinworks_common.quality import store

    if verdict not in ("right", "wrong"):
        raise typer.BadParameter("the verdict is right or wrong")

    async def act(conn: Any) -> Any:
        return await store.mark(conn, review_id, agent, wrong=verdict == "wrong",
                                correct_intent=intent)

    try:
        review = run_command(with_platform_db(act, write=True))
    except store.QualityError as error:
        raise _fail(error) from None
    typer.echo(f"review {review.id} ({review.ticket_id}) marked {review.status}"
               + (f": right intent {review.correct_intent}" if review.correct_intent else ""))


@quality_app.command("loosen")
def quality_loosen(
    kind: Annotated[str, typer.Argument(help="business_unit or intent_group")],
    name: str,
    actor: Annotated[str, typer.Option("--by", help="Who loosens (recorded).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
) -> None:
    """Let automation answer a tightened scope again (recorded; its evidence restarts now)."""
    from pinworks_common.quality import store
    from pinworks_common.quality.estimate import ScopeKind

    try:
        scope_kind = ScopeKind(kind)
    except ValueError:
        raise typer.BadParameter("kind is business_unit or intent_group") from None
    try:
        run_command(with_platform_db(
            lambda conn: store.loosen(conn, scope_kind, name, actor, reason), write=True))
    except store.QualityError as error:
        raise _fail(error) from None
    typer.echo(f"{kind} {name} loosened by {actor}: automation answers it again")
