"""The ticket page's forms: each action runs like its `/api` twin, then redirects (303) to the
ticket with a notice code, or with the refusal's code (to the queue when the ticket is gone);
the page shows the fixed message of the code. Every form carries the session's CSRF token
(`deps`)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import RedirectResponse, Response

from pinworks_escalation.console.deps import ConsoleDep, PageAgent
from pinworks_escalation.console.work import Refusal
from pinworks_escalation.schemas import Correction, Reassignment, Reply

router = APIRouter(include_in_schema=False)


def after_action(ticket_id: str, refusal: HTTPException | None, done: str) -> str:
    """Where an action's form sends the agent: the ticket with the notice's or the refusal's
    code, or the queue when the ticket is not (or no longer) theirs to see."""
    target = f"/tickets/{quote(ticket_id)}"
    if refusal is None:
        return f"{target}?notice={done}"
    code = refusal.code if isinstance(refusal, Refusal) else "refused"
    if refusal.status_code == 404:
        return "/?error=gone"
    return f"{target}?error={code}"


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
        "claimed")


@router.post("/claim-next")
async def claim_next_form(agent: PageAgent, console: ConsoleDep) -> Response:
    item = await console.claim_next(agent)
    if item is None:
        return RedirectResponse("/?notice=nothing", status_code=303)
    return RedirectResponse(f"/tickets/{quote(item.ticket_id)}?notice=holding", status_code=303)


@router.post("/tickets/{ticket_id}/release")
async def release_form(ticket_id: str, agent: PageAgent, console: ConsoleDep) -> Response:
    return await page_action(ticket_id, lambda: console.release(agent, ticket_id),
                             "released")


@router.post("/tickets/{ticket_id}/resolve")
async def resolve_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                       reply: Annotated[str, Form()],
                       suggestion: Annotated[str, Form()] = "",
                       intent: Annotated[str, Form()] = "") -> Response:
    """Resolve with the reply; with `intent` (the customer's, when the classifier's was wrong)
    an automatic answer the ticket had with another intent counts as wrong."""
    async def run() -> None:
        if not reply.strip():
            raise Refusal(409, "Write a reply to the customer first.", "empty_reply")
        await console.resolve(agent, ticket_id, Reply(
            reply=reply, suggestion=suggestion[:200] or None, intent=intent.strip() or None))
    return await page_action(ticket_id, run, "resolved")


@router.post("/tickets/{ticket_id}/reassign")
async def reassign_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                        to_agent: Annotated[str, Form()]) -> Response:
    return await page_action(
        ticket_id, lambda: console.reassign(agent, ticket_id, Reassignment(agent=to_agent)),
        "reassigned")


@router.post("/tickets/{ticket_id}/send-back")
async def send_back_form(ticket_id: str, agent: PageAgent, console: ConsoleDep,
                         intent: Annotated[str, Form()]) -> Response:
    return await page_action(
        ticket_id, lambda: console.send_back(agent, ticket_id, Correction(intent=intent)),
        "sent_back")
