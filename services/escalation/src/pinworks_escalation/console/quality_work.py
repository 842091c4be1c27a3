"""The quality review in the console: the sampled automatic answers of an agent's business
units, and the agent's verdict on one, shared by the JSON API (`quality_api`) and the page
(`quality_pages`).

The rule is the tickets' rule: a review of another unit answers 404 in the words of one that
does not exist. A verdict is `pinworks_common.quality.store.mark` with the signed-in agent's
name, so it reaches the router's quality guard exactly as any other verdict does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from pinworks_common.db.tables import tickets
from pinworks_common.quality import store
from pinworks_contracts.intents import intent_label
from pinworks_escalation.console.work import Console, Refusal, known
from pinworks_escalation.queue import Agent
from pinworks_escalation.schemas import QualityVerdict

STATUSES = ("pending", "right", "wrong", "all")
STATUS_OF_CODE = {"no_review": 404, "already_marked": 409}
"""HTTP status of a store refusal by its code; any other is 422."""


def refusal(error: store.QualityError) -> Refusal:
    return Refusal(STATUS_OF_CODE.get(error.code, 422), str(error), error.code)


def units_of(agent: Agent, business_unit: str | None) -> list[str]:
    """The agent's units, or that one of them (none when it is not theirs)."""
    return [u for u in agent.business_units if business_unit is None or u == business_unit]


async def with_tickets(console: Console, reviews: Sequence[store.Review]) -> list[dict[str, Any]]:
    """Each review as the API gives it: with what the customer wrote."""
    ids = sorted({r.ticket_id for r in reviews})
    async with console.reading() as conn:
        rows = {row.ticket_id: row for row in (await conn.execute(
            select(tickets.c.ticket_id, tickets.c.subject, tickets.c.body)
            .where(tickets.c.ticket_id.in_(ids)))).all()} if ids else {}
    return [{**r.as_dict(), "intent_label": intent_label(r.intent) if r.intent else "-",
             "subject": getattr(rows.get(r.ticket_id), "subject", None),
             "body": getattr(rows.get(r.ticket_id), "body", None)} for r in reviews]


async def review_page(console: Console, agent: Agent, *, status: str = "pending",
                      business_unit: str | None = None, limit: int = 50, offset: int = 0
                      ) -> tuple[list[dict[str, Any]], int]:
    """One page of the reviews of the agent's units (oldest first) and how many match."""
    if status not in STATUSES:
        raise Refusal(422, "status is pending, right, wrong or all", "bad_filter")
    if not 1 <= limit <= 500 or offset < 0:
        raise Refusal(422, "limit is 1-500 and offset 0 or more", "bad_filter")
    wanted = None if status == "all" else status
    units = units_of(agent, business_unit)
    async with console.reading() as conn:
        found = await store.list_reviews(conn, status=wanted, business_units=units,
                                         limit=limit, offset=offset)
        total = await store.count_reviews(conn, status=wanted, business_units=units)
    return await with_tickets(console, found), total


async def one_review(console: Console, agent: Agent, review_id: int) -> dict[str, Any]:
    """The review if it is of one of the agent's units, else 404."""
    try:
        async with console.reading() as conn:
            review = await store.get_review(conn, review_id, agent.business_units)
    except store.QualityError as error:
        raise refusal(error) from None
    [found] = await with_tickets(console, [review])
    return found


async def mark(console: Console, agent: Agent, review_id: int,
               verdict: QualityVerdict) -> dict[str, Any]:
    """The signed-in agent's verdict: 404 outside their units, then 422 for a wrong verdict
    without a known intent (naming the nearest) or a right one with an intent, 409 once
    someone has marked it."""
    await one_review(console, agent, review_id)
    wrong = verdict.verdict == "wrong"
    if not wrong and verdict.intent:
        raise Refusal(422, "only a wrong answer takes an intent (the one that was right)",
                      "right_with_intent")
    intent = known(verdict.intent) if wrong and verdict.intent else None
    try:
        async with console.engine.begin() as conn:
            review = await store.mark(conn, review_id, agent.name, wrong=wrong,
                                      correct_intent=intent,
                                      business_units=agent.business_units)
    except store.QualityError as error:
        raise refusal(error) from None
    [marked] = await with_tickets(console, [review])
    return marked
