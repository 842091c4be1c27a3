"""An automatically answered ticket in the console: its page, and the form that reopens it for
a person when the customer says the answer missed (`POST /tickets/{id}/reopen`, the twin of
`/api/tickets/{id}/reopen`). The ticket page shows this page for a ticket of the agent's units
that is not in the queue but was last answered by automation, and the same form beside a
queued ticket that automation answered since. Whoever then resolves it with another intent
(the resolve form's intent) makes that answer count as wrong in the live estimate."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from pinworks_escalation.console.deps import ConsoleDep, PageAgent
from pinworks_escalation.console.forms import page_action
from pinworks_escalation.console.messages import ANSWERED_ERRORS, error
from pinworks_escalation.console.work import Console, Refusal
from pinworks_escalation.queue import Agent
from pinworks_escalation.schemas import Reopening

router = APIRouter(include_in_schema=False)

REASON_LIMIT = 2_000
"""`Reopening.reason`'s longest: a longer reason is cut there."""


async def answered_page(request: Request, console: Console, agent: Agent, ticket_id: str,
                        error_code: str | None) -> Response | None:
    """The page of a ticket of the agent's units last answered by automation; None otherwise
    (the caller shows that there is no such ticket)."""
    answered = await console.automatic_answer(agent, ticket_id)
    if answered is None:
        return None
    return console.page(request, "answered.html", agent=agent, a=answered,
                        reason_limit=REASON_LIMIT, error=error(error_code, ANSWERED_ERRORS))


@router.post("/tickets/{ticket_id}/reopen")
async def reopen_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                      reason: Annotated[str, Form()] = "") -> Response:
    async def run() -> None:
        if not reason.strip():
            raise Refusal(409, "Say why the automatic answer needs a person.", "empty_reason")
        await console.reopen(agent, ticket_id, Reopening(reason=reason.strip()[:REASON_LIMIT]))
    return await page_action(ticket_id, run, "reopened")
