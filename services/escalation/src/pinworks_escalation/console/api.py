"""The console's JSON API under `/api`: an agent sees and acts only on tickets of their
business units; another unit's ticket answers 404, like one that does not exist."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from pinworks_contracts.intents import intent_label, known_intents
from pinworks_escalation.console.deps import (
    ApiAgent,
    ConsoleDep,
    clear_session,
    client_address,
    credential_of,
    set_session,
)
from pinworks_escalation.console.work import Console
from pinworks_escalation.queue import Agent, QueueError, QueueQuery, assist_usefulness
from pinworks_escalation.schemas import (
    AssistUsefulness,
    BearerToken,
    Correction,
    Me,
    QueueEntry,
    Reassignment,
    Reopening,
    Reply,
    ResolvedOutcome,
    SentBack,
    SignIn,
    TicketDetail,
    TokenRequest,
)

router = APIRouter()


SIGN_IN_REFUSALS: dict[int | str, dict[str, Any]] = {401: {"description": "unknown agent or wrong password"},
                    429: {"description": "too many attempts: locked (see Retry-After)"}}


async def signed_in_agent(request: Request, console: Console, body: SignIn) -> Agent:
    """The agent, or 401 / 429: throttled per name and per address before any hashing."""
    result = await console.sign_in(body.name.strip(), body.password, client_address(request))
    if result.refused == "locked":
        raise HTTPException(429, "too many sign-in attempts: try again later",
                            headers={"Retry-After": str(result.retry_after_seconds)})
    if result.agent is None:
        raise HTTPException(401, "unknown agent or wrong password")
    return result.agent


@router.post("/api/session", response_model=Me, tags=["session"], responses=SIGN_IN_REFUSALS)
async def api_sign_in(body: SignIn, request: Request, response: Response,
                      console: ConsoleDep) -> Me:
    """Sign in; the response sets the session cookie and gives its CSRF token, which every
    state-changing call with the cookie sends as `X-CSRF-Token`."""
    agent = await signed_in_agent(request, console, body)
    token, session = await console.open_session(agent, "browser", client_address(request))
    set_session(console, request, response, token)
    return Me(agent=agent.name, business_units=list(agent.business_units),
              csrf_token=session.csrf_token, expires_at=session.expires_at)


@router.post("/api/tokens", response_model=BearerToken, tags=["session"],
             responses=SIGN_IN_REFUSALS)
async def api_token(body: TokenRequest, request: Request, console: ConsoleDep) -> BearerToken:
    """Sign in for a script or `pinworks login`: a bearer token (`Authorization: Bearer
    TOKEN`), a server-side session like the cookie's that `DELETE /api/session` or a password
    change ends."""
    agent = await signed_in_agent(request, console, body)
    token, session = await console.open_session(agent, body.kind, client_address(request))
    return BearerToken(token=token, agent=agent.name, business_units=list(agent.business_units),
                       expires_at=session.expires_at)


@router.delete("/api/session", status_code=204, tags=["session"])
async def api_sign_out(request: Request, _: ApiAgent, console: ConsoleDep) -> Response:
    """End the session of this request (the cookie's or the bearer token's) on the server."""
    credential = credential_of(request)
    await console.end_session(credential.token if credential else None)
    response = Response(status_code=204)
    clear_session(console, request, response)
    return response


@router.get("/api/me", response_model=Me, response_model_exclude_none=True, tags=["session"])
async def api_me(agent: ApiAgent) -> Me:
    return Me(agent=agent.name, business_units=list(agent.business_units))


@router.get("/api/queue", response_model=list[QueueEntry], tags=["queue"])
async def api_queue(
    agent: ApiAgent, response: Response, console: ConsoleDep, include_resolved: bool = False,
    q: str | None = None, status: str | None = None, intent: str | None = None,
    business_unit: str | None = None, min_priority: int | None = None,
    sort: str = "priority", limit: int = 100, offset: int = 0,
) -> list[dict[str, Any]]:
    """One page of the agent's business units' tickets, most urgent first unless `sort`
    says otherwise (priority, sla, newest, oldest). `q` searches ticket id, subject, body
    and customer id; `status` is active (open and claimed, the default), open, claimed,
    resolved, returned or all. `X-Total-Count` says how many match across all pages."""
    try:
        query = QueueQuery(
            search=q, status=status or ("all" if include_resolved else "active"),
            intent=intent, business_unit=business_unit, min_priority=min_priority,
            sort=sort, limit=limit, offset=offset)
    except QueueError as error:
        raise HTTPException(422, str(error)) from None
    items, total = await console.queue_page_of(agent, query)
    response.headers["X-Total-Count"] = str(total)
    return [item.as_dict() for item in items]


@router.get("/api/intents", response_model=list[dict[str, str]], tags=["queue"])
async def api_intents(_: ApiAgent) -> list[dict[str, str]]:
    """The intents the classifier knows, with the names agents read."""
    return [{"intent": i, "label": intent_label(i)} for i in known_intents()]


@router.get("/api/reports/assist", response_model=list[AssistUsefulness], tags=["queue"])
async def api_assist_report(agent: ApiAgent, console: ConsoleDep) -> list[dict[str, Any]]:
    """How useful the suggested replies are, per intent, in the agent's business units."""
    async with console.reading() as conn:
        return await assist_usefulness(conn, agent.business_units)


@router.get("/api/tickets/{ticket_id}", response_model=TicketDetail, tags=["tickets"])
async def api_ticket(ticket_id: str, agent: ApiAgent, console: ConsoleDep) -> dict[str, Any]:
    """The ticket with its whole context."""
    return await console.detail(agent, ticket_id)


@router.post("/api/claim-next", response_model=QueueEntry, tags=["tickets"],
             responses={404: {"description": "nothing to claim"}})
async def api_claim_next(agent: ApiAgent, console: ConsoleDep,
                         business_unit: str | None = None) -> dict[str, Any]:
    """Claim the most urgent claimable ticket of the agent's business units (of
    `business_unit` only, when it is one of them)."""
    item = await console.claim_next(agent, business_unit)
    if item is None:
        raise HTTPException(404, "nothing to claim")
    return item.as_dict()


@router.post("/api/tickets/{ticket_id}/claim", response_model=QueueEntry, tags=["tickets"],
             responses={409: {"description": "claimed by someone else, or resolved"}})
async def api_claim(ticket_id: str, agent: ApiAgent, console: ConsoleDep) -> dict[str, Any]:
    return (await console.claim_one(agent, ticket_id)).as_dict()


@router.post("/api/tickets/{ticket_id}/release", status_code=204, tags=["tickets"])
async def api_release(ticket_id: str, agent: ApiAgent, console: ConsoleDep) -> Response:
    await console.release(agent, ticket_id)
    return Response(status_code=204)


@router.post("/api/tickets/{ticket_id}/resolve", response_model=ResolvedOutcome,
             tags=["tickets"])
async def api_resolve(
    ticket_id: str, body: Reply, agent: ApiAgent, console: ConsoleDep
) -> dict[str, Any]:
    """Resolve with a reply: the `resolved` outcome (resolved_by = the agent) is published.
    How the reply differs from the suggestion it started from is recorded. With `intent`
    (one the classifier knows; 422 names the nearest ones) the outcome carries it, and an
    automatic answer the ticket had with another intent counts as wrong."""
    outcome = await console.resolve(agent, ticket_id, body)
    return {"outcome": outcome.model_dump(mode="json")}


@router.post("/api/tickets/{ticket_id}/reassign", response_model=QueueEntry, tags=["tickets"])
async def api_reassign(
    ticket_id: str, body: Reassignment, agent: ApiAgent, console: ConsoleDep
) -> dict[str, Any]:
    """Hand the ticket to a colleague of the same business unit (they hold it with a lease)."""
    return (await console.reassign(agent, ticket_id, body)).as_dict()


@router.post("/api/tickets/{ticket_id}/send-back", response_model=SentBack, tags=["tickets"])
async def api_send_back(
    ticket_id: str, body: Correction, agent: ApiAgent, console: ConsoleDep
) -> dict[str, Any]:
    """Correct the intent: recorded as a labelled example; the ticket returns to the queue.
    Only an intent the classifier knows is accepted (422 names the nearest ones)."""
    return await console.send_back(agent, ticket_id, body)


@router.post("/api/tickets/{ticket_id}/reopen", response_model=QueueEntry, tags=["tickets"],
             responses={409: {"description": "not last answered by automation"}})
async def api_reopen(
    ticket_id: str, body: Reopening, agent: ApiAgent, console: ConsoleDep
) -> dict[str, Any]:
    """Put a ticket automation answered back in the queue for a person (open, priority and
    SLA as when escalated), recorded with the reason; another unit's ticket answers 404."""
    return (await console.reopen(agent, ticket_id, body)).as_dict()
