"""`pinworks quality …`: the agents' quality review of automatic answers, and loosening.

Automatic answers reach agents here: the escalation service's quality sample queues a share of
them (`ESCALATION_QUALITY_SAMPLE_RATE`), and an agent marks each right or wrong (with the intent
that was right). `list`, `show` and `mark` act as the agent signed in with `pinworks login`:
each is a call to the console's API (`/api/quality/reviews`) with that agent's token, so the
terminal sees only the reviews of the agent's business units, refuses in the console's words
and records the verdict under the agent's own name. The router's quality guard estimates each
business unit's and intent group's wrong-answer rate from the verdicts and tightens a scope
whose upper bound passes the policy's error budget; only `pinworks quality loosen`, an
operator's command (as DATABASE_URL's role), undoes that, and it is recorded.
The `pinworks` CLI mounts `quality_app` through the entry point `pinworks.cli` / `quality`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from pinworks_common.commands.agent_session import as_agent, refuse
from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

quality_app = typer.Typer(help="Quality review of automatic answers (list, show and mark as the "
                          "agent of `pinworks login`; loosen: operators).", no_args_is_help=True)
console = LazyConsole()

NO_AGENT_OPTION = ("quality mark takes no --agent: it marks as the agent signed in with "
                   "`pinworks login` (see `pinworks whoami`)")


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]{error}[/]", highlight=False)
    return typer.Exit(1)


def _verdict(review: dict[str, Any]) -> str:
    return review["status"] + (f" -> {review['correct_intent']}" if review["correct_intent"]
                               else "")


@quality_app.command("list")
def quality_list(
    business_unit: Annotated[str | None, typer.Option(
        "--business-unit", help="Only this one of your business units.")] = None,
    status: Annotated[str, typer.Option(help="pending, right, wrong or all.")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=500, help="Reviews per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the next page).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Automatic answers in the quality review of your business units (oldest first)."""
    answer = as_agent("GET", "/api/quality/reviews", query={
        "status": status, "business_unit": business_unit, "limit": limit, "offset": offset})
    reviews: list[dict[str, Any]] = answer.data
    total = int(answer.headers.get("x-total-count", len(reviews)))
    if as_json:
        sys.stdout.write(json.dumps(reviews, indent=2) + "\n")
        return
    if not reviews:
        typer.echo(f"no {status} quality reviews")
    for r in reviews:
        typer.echo(f"{r['id']}\t{r['ticket_id']}\t{r['business_unit']}\t{r['intent']}\t"
                   f"{r['handler']}\t{r['source']}\t{_verdict(r)}")
    if offset + len(reviews) < total:
        typer.echo(f"showing {offset + 1}-{offset + len(reviews)} of {total}; next page: "
                   f"pinworks quality list --offset {offset + len(reviews)}")


@quality_app.command("show")
def quality_show(
    review_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """One review of your business units: what the customer wrote, the automatic answer, its
    intent and handler, and any verdict."""
    review: dict[str, Any] = as_agent("GET", f"/api/quality/reviews/{review_id}").data
    if as_json:
        sys.stdout.write(json.dumps(review, indent=2) + "\n")
        return
    for name, value in review.items():
        typer.echo(f"{name}: {'-' if value is None else value}")


@quality_app.command("mark")
def quality_mark(
    review_id: int,
    verdict: Annotated[str, typer.Argument(help="right or wrong")],
    intent: Annotated[str | None, typer.Option(
        "--intent", help="The intent that was right (for a wrong answer; see "
        "`pinworks queue intents`).")] = None,
    agent: Annotated[str | None, typer.Option("--agent", hidden=True)] = None,
) -> None:
    """Mark an automatic answer of your business units right, or wrong with the intent that
    was right, as the agent signed in with `pinworks login`."""
    if agent is not None:
        refuse(NO_AGENT_OPTION)
    if verdict not in ("right", "wrong"):
        raise typer.BadParameter("the verdict is right or wrong")
    body = {"verdict": verdict} | ({"intent": intent} if intent else {})
    review = as_agent("POST", f"/api/quality/reviews/{review_id}/mark", body=body).data
    typer.echo(f"review {review['id']} ({review['ticket_id']}) marked {review['status']} by "
               f"{review['reviewed_by']}"
               + (f": right intent {review['correct_intent']}" if review["correct_intent"]
                  else ""))


@quality_app.command("loosen")
def quality_loosen(
    kind: Annotated[str, typer.Argument(help="business_unit or intent_group")],
    name: str,
    actor: Annotated[str, typer.Option(
        "--by", help="The agent who answers for it (a name of `pinworks agent list`; "
        "recorded).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
) -> None:
    """Operators: let automation answer a tightened scope again (recorded; its evidence
    restarts now). Reads and writes the database as DATABASE_URL's role, not as a signed-in
    agent."""
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
