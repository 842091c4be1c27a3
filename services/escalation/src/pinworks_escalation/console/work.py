"""What the console's JSON API and its pages share: reading the queue within an agent's
business units, and the agents' actions, each in its own transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request

from pinworks_common.db.tables import tickets
from pinworks_common.metrics import until_commit
from pinworks_contracts.intents import UnknownIntent, validate_intent
from pinworks_contracts.messages import Outcome
from pinworks_escalation.assist import compare, suggestions_for
from pinworks_escalation.queue import (
    Agent,
    NotQueued,
    QueueError,
    QueueItem,
    QueueQuery,
    claim,
    count_queue,
    customer_history,
    get_item,
    last_automatic_answer,
    list_queue,
    reassign,
    release,
    reopen,
    resolve,
    send_back,
    ticket_context,
)
from pinworks_escalation.schemas import Correction, Reassignment, Reopening, Reply
from pinworks_escalation.settings import EscalationSettings
from pinworks_escalation.signin import Session, SignInResult, open_session, revoke, sign_in

T = TypeVar("T")


class Refusal(HTTPException):
    """An agent action refused: the HTTP status and reason (API), and a fixed code (pages)."""

    def __init__(self, status_code: int, detail: str, code: str = "refused") -> None:
        super().__init__(status_code, detail)
        self.code = code


@dataclass(frozen=True)
class Console:
    """The console's database, settings and page templates, one per application."""

    engine: AsyncEngine
    settings: EscalationSettings
    templates: Jinja2Templates

    @property
    def lease(self) -> timedelta:
        return timedelta(minutes=self.settings.lease_minutes)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def page(self, request: Request, template: str, status_code: int = 200,
             **values: Any) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        values.setdefault("csrf_token", session.csrf_token if session else None)
        return self.templates.TemplateResponse(request, template, values, status_code=status_code)

    async def sign_in(self, name: str, password: str, address: str | None) -> SignInResult:
        """Throttled per name and per address before any hashing (see `signin`)."""
        return await sign_in(self.engine, name, password, address, self.settings.signin_policy())

    async def open_session(self, agent: Agent, kind: str,
                           address: str | None) -> tuple[str, Session]:
        hours = self.settings.cli_token_hours if kind == "cli" else self.settings.session_hours
        async with self.engine.begin() as conn:
            return await open_session(conn, agent.name, kind, timedelta(hours=hours), address)

    async def end_session(self, token: str | None) -> bool:
        async with self.engine.begin() as conn:
            return await revoke(conn, token)

    async def act(self, action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run one agent action in its own transaction; queue refusals become HTTP errors."""
        try:
            with until_commit():  # an agent's resolution counts its cost and outcome once
                async with self.engine.begin() as conn:
                    return await action(conn)
        except NotQueued as error:
            raise Refusal(404, str(error), error.code) from None
        except QueueError as error:
            raise Refusal(409, str(error), error.code) from None

    async def scoped_item(self, agent: Agent, ticket_id: str) -> QueueItem:
        """The ticket if it is in one of the agent's business units, else 404."""
        async with self.reading() as conn:
            item = await get_item(conn, ticket_id, business_units=agent.business_units)
        if item is None:
            raise Refusal(404, f"no escalated ticket {ticket_id}", "gone")
        return item

    async def detail(self, agent: Agent, ticket_id: str) -> dict[str, Any]:
        """The ticket with its whole context, suggested replies and the customer's history."""
        item = await self.scoped_item(agent, ticket_id)
        envelope = item.context.get("envelope", {})
        customer_id = (envelope.get("ticket") or {}).get("customer_id")
        async with self.reading() as conn:
            context = await ticket_context(conn, ticket_id)
            earlier = await customer_history(
                conn, customer_id, exclude=ticket_id,
                business_units=agent.business_units) if customer_id else []
        return {
            **item.as_dict(),
            "envelope": envelope,
            "corrections": item.context.get("corrections", []),
            "reply": item.reply,
            **context,
            "customer_state": item.context.get("customer_state"),
            "suggestions": [s.as_dict() for s in suggestions_for(envelope, context["decisions"])],
            "earlier_tickets": earlier,
        }

    async def queue_page_of(self, agent: Agent, query: QueueQuery) -> tuple[list[QueueItem], int]:
        """One page of the agent's queue and how many tickets match across all pages."""
        async with self.reading() as conn:
            items = await list_queue(conn, business_units=agent.business_units, query=query)
            total = await count_queue(conn, query, business_units=agent.business_units)
        return items, total

    async def claim_next(self, agent: Agent, business_unit: str | None = None) -> QueueItem | None:
        """The most urgent claimable ticket of the agent's units (or of that one of them)."""
        units = agent.business_units if business_unit is None else [
            unit for unit in agent.business_units if unit == business_unit]
        return await self.act(lambda conn: claim(
            conn, agent.name, business_units=units, lease=self.lease))

    async def claim_one(self, agent: Agent, ticket_id: str) -> QueueItem:
        """Claim the ticket; 409 says who holds it, or who resolved it."""
        item = await self.scoped_item(agent, ticket_id)
        claimed = await self.act(lambda conn: claim(
            conn, agent.name, ticket_id=ticket_id, business_units=agent.business_units,
            lease=self.lease))
        if claimed is None:
            if item.status == "resolved":
                raise Refusal(409, f"{ticket_id} was already resolved by {item.resolved_by}",
                              "resolved")
            raise Refusal(409, f"{ticket_id} is claimed by {item.claimed_by}", "held")
        return claimed

    async def release(self, agent: Agent, ticket_id: str) -> None:
        await self.act(lambda conn: release(conn, ticket_id, agent.name,
                                            business_units=agent.business_units))

    async def resolve(self, agent: Agent, ticket_id: str, body: Reply) -> Outcome:
        """Resolve with the reply, recording how it differs from the suggestion it started from;
        404 outside the agent's units, then 422 for an intent the classifier does not know."""
        data = await self.detail(agent, ticket_id)
        intent = known(body.intent) if body.intent else None
        offered = suggestions_for(data["envelope"], data["decisions"])
        assist = compare(body.reply, offered, body.suggestion) if offered else None
        return await self.act(lambda conn: resolve(
            conn, ticket_id, agent.name, body.reply, agent_cost=self.settings.agent_cost_usd,
            business_units=agent.business_units, assist=assist, intent=intent))

    async def automatic_answer(self, agent: Agent, ticket_id: str) -> dict[str, Any] | None:
        """The ticket of the agent's units with the automatic answer it was last given, what a
        reopening takes; None when another unit's, unknown, or not last answered by
        automation."""
        async with self.reading() as conn:
            row = (await conn.execute(
                select(tickets.c.ticket_id, tickets.c.business_unit, tickets.c.subject,
                       tickets.c.body, tickets.c.received_at)
                .where(tickets.c.ticket_id == ticket_id,
                       tickets.c.business_unit.in_(agent.business_units)))).first()
            answer = await last_automatic_answer(conn, ticket_id) if row else None
        if row is None or answer is None:
            return None
        return {**row._mapping, "attempt": answer.attempt, "intent": answer.intent,
                "confidence": answer.confidence, "handler": answer.handler,
                "answer": answer.answer}

    async def reopen(self, agent: Agent, ticket_id: str, body: Reopening) -> QueueItem:
        """Queue an automatically answered ticket of the agent's units for a person again."""
        return await self.act(lambda conn: reopen(
            conn, ticket_id, agent.name, body.reason, business_units=agent.business_units))

    async def reassign(self, agent: Agent, ticket_id: str, body: Reassignment) -> QueueItem:
        return await self.act(lambda conn: reassign(
            conn, ticket_id, agent.name, body.agent, business_units=agent.business_units,
            lease=self.lease))

    async def send_back(self, agent: Agent, ticket_id: str, body: Correction) -> dict[str, Any]:
        """Correct the intent and send the ticket back: 404 outside the agent's units, then
        422 for an intent the classifier does not know (naming the nearest ones)."""
        await self.scoped_item(agent, ticket_id)
        intent = known(body.intent)
        return await self.act(lambda conn: send_back(conn, ticket_id, agent.name, intent,
                                                     business_units=agent.business_units))


def known(intent: str) -> str:
    """The known intent `intent` names; 422 naming the nearest ones otherwise."""
    try:
        return validate_intent(intent)
    except UnknownIntent as error:
        raise Refusal(422, str(error), "bad_intent") from None
