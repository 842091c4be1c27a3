"""The ticket page's forms: each action runs like its `/api` twin, then redirects (303) to the
ticket with a notice, or with the refusal as an error (to the queue when the ticket is gone)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import RedirectResponse, Response

from pinworks_contracts.intents import intent_label
from pinworks_escalation.console.deps import ConsoleDep, PageAgent
from pinworks_escalation.schemas import Correction, Reassignment, Reply

router = APIRouter(include_in_schema=False)


def after_action(ticket_id: str, refusal: HTTPException | None, done: str) -> str:
    """Where an action's form sends the agent: the ticket with a notice or the refusal, or the
    queue when the ticket is not (or no longer) theirs to see."""
    target = f"/tickets/{quote(ticket_id)}"
    if refusal is None:
        return f"{target}?notice={quote(done)}"
    if refusal.status_code == 404:
        return f"/?error={quote(str(refusal.detail))}"
    return f"{target}?error={quote(str(refusal.detail))}"


async def page_action(ticket_id: str, action: Callable[[], Awaitable[Any]],
                      done: str) -> Response:
    refusal = None
    try:
        await action()
    except HTTPException as error:
        refusal = error
    return RedirectResponse(after_action(ticket_id, refusal, done), status_code=303)


@router.post("/tickets/{ticket_id}/claim")
async def claim_form(ticket_id: str, agent: PageAgent, console: ConsoleDep) -> Response:
    return await page_action(
        ticket_id, lambda: console.claim_one(agent, ticket_id),
        f"You hold {ticket_id} for {console.settings.lease_minutes} minutes.")


@router.post("/claim-next")
async def claim_next_form(agent: PageAgent, console: ConsoleDep) -> Response:
    item = await console.claim_next(agent)
    if item is None:
        return RedirectResponse(f"/?notice={quote('Nothing to claim.')}", status_code=303)
    return RedirectResponse(f"/tickets/{quote(item.ticket_id)}?notice="
                            f"{quote('You hold this ticket.')}", status_code=303)


@router.post("/tickets/{ticket_id}/release")
async def release_form(ticket_id: str, agent: PageAgent, console: ConsoleDep) -> Response:
    return await page_action(ticket_id, lambda: console.release(agent, ticket_id),
                             "Released to the queue.")


@router.post("/tickets/{ticket_id}/resolve")
async def resolve_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                       reply: Annotated[str, Form()],
                       suggestion: Annotated[str, Form()] = "") -> Response:
    async def run() -> None:
        if not reply.strip():
            raise HTTPException(409, "Write a reply to the customer first.")
        await console.resolve(agent, ticket_id,
                              Reply(reply=reply, suggestion=suggestion[:200] or None))
    return await page_action(ticket_id, run, "Resolved: the reply is on its way.")


@router.post("/tickets/{ticket_id}/reassign")
async def reassign_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                        to_agent: Annotated[str, Form()]) -> Response:
    return await page_action(
        ticket_id, lambda: console.reassign(agent, ticket_id, Reassignment(agent=to_agent)),
        f"Reassigned to {to_agent}.")


@router.post("/tickets/{ticket_id}/send-back")
async def send_back_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                         intent: Annotated[str, Form()]) -> Response:
    return await page_action(
        ticket_id, lambda: console.send_back(agent, ticket_id, Correction(intent=intent)),
        f"Intent corrected to {intent_label(intent.strip())}; kept as a labelled example.")
