"""The console's pages (server-rendered, no front-end build): sign-in, the queue with its
search, filters, order and pages, the assist report and a ticket with everything about it."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pinworks_contracts.intents import intent_label, known_intents
from pinworks_contracts.messages import utcnow
from pinworks_escalation.console.answers import answered_page
from pinworks_escalation.console.deps import (
    ConsoleDep,
    PageAgent,
    clear_session,
    client_address,
    credential_of,
    set_session,
)
from pinworks_escalation.console.formatting import safe_next
from pinworks_escalation.console.messages import (
    LOGIN_ERRORS,
    QUEUE_ERRORS,
    QUEUE_NOTICES,
    error,
    notice,
)
from pinworks_escalation.queue import (
    CLAIMED,
    OPEN,
    SORTS,
    STATUS_FILTERS,
    Agent,
    QueueError,
    QueueQuery,
    assist_usefulness,
    list_agents,
)

PAGE_SIZE = 50
"""Tickets per queue page."""
FILTER_KEYS = ("q", "status", "intent", "unit", "sort", "page")

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, console: ConsoleDep, next: str = "/") -> HTMLResponse:
    return console.page(request, "login.html", next=safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request,
    console: ConsoleDep,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    address = client_address(request)
    result = await console.sign_in(name.strip(), password, address)
    if result.agent is None:
        locked = result.refused == "locked"
        page = console.page(request, "login.html", status_code=429 if locked else 401,
                            next=safe_next(next),
                            error=error("locked" if locked else "wrong", LOGIN_ERRORS),
                            name=name)
        if locked:
            page.headers["Retry-After"] = str(result.retry_after_seconds)
        return page
    token, _ = await console.open_session(result.agent, "browser", address)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(console, request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request, _: PageAgent, console: ConsoleDep) -> Response:
    """Sign out: the session ends on the server, not only in this browser."""
    credential = credential_of(request)
    await console.end_session(credential.token if credential else None)
    response = RedirectResponse("/login", status_code=303)
    clear_session(console, request, response)
    return response


@dataclass(frozen=True)
class PageQuery:
    """The queue page's query, the filters as the agent gave them (page number normalised),
    and why a value was ignored, if one was."""

    query: QueueQuery
    filters: dict[str, str]
    problem: str | None

    @property
    def page_number(self) -> int:
        return int(self.filters["page"])

    def kept(self) -> dict[str, str]:
        """The filters worth carrying to another page (set, and not the page number)."""
        return {k: v for k, v in self.filters.items() if v and k != "page"}

    def page_link(self) -> Callable[[int], str]:
        kept = self.kept()
        return lambda n: "/?" + urlencode({**kept, "page": n})


def page_query(params: Mapping[str, str]) -> PageQuery:
    """The queue page's search, filters, order and page from its query string; a value
    that makes no sense falls back to the default, with a message."""
    wanted = {key: params.get(key, "").strip() for key in FILTER_KEYS}
    problem = None
    number = int(wanted["page"]) if wanted["page"].isdigit() and int(wanted["page"]) > 0 else 1
    try:
        query = QueueQuery(
            search=wanted["q"] or None, status=wanted["status"] or "active",
            intent=wanted["intent"] or None, business_unit=wanted["unit"] or None,
            sort=wanted["sort"] or "priority", limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE)
    except QueueError as error:
        problem = str(error)
        query = QueueQuery(limit=PAGE_SIZE)
    wanted["page"] = str(number)
    return PageQuery(query, wanted, problem)


def page_count(total: int) -> int:
    """Queue pages for `total` tickets: at least one, even for an empty queue."""
    return max(1, -(-total // PAGE_SIZE))


async def queue_values(request: Request, console: ConsoleDep, agent: Agent) -> dict[str, Any]:
    """What the queue page and its refreshed rows show."""
    wanted = page_query(request.query_params)
    items, total = await console.queue_page_of(agent, wanted.query)
    return {"agent": agent, "items": items, "now": utcnow(), "total": total,
            "page_number": wanted.page_number, "pages": page_count(total),
            "first_row": wanted.query.offset + 1,
            "last_row": wanted.query.offset + len(items), "filters": wanted.filters,
            "filter_query": urlencode(wanted.kept()), "query_error": wanted.problem,
            "page_link": wanted.page_link(),
            "intents": known_intents(), "sorts": list(SORTS),
            "statuses": list(STATUS_FILTERS)}


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request, agent: PageAgent, console: ConsoleDep,
                     notice_code: Annotated[str | None, Query(alias="notice")] = None,
                     error_code: Annotated[str | None, Query(alias="error")] = None
                     ) -> HTMLResponse:
    """The queue; `notice` and `error` are codes of fixed messages (`messages`)."""
    values = await queue_values(request, console, agent)
    problem = "bad_filter" if values.pop("query_error") else None
    return console.page(request, "queue.html",
                        refresh_seconds=console.settings.queue_refresh_seconds,
                        notice=notice(notice_code, QUEUE_NOTICES),
                        error=error(error_code or problem, QUEUE_ERRORS), **values)


@router.get("/fragments/queue", response_class=HTMLResponse)
async def queue_fragment(request: Request, agent: PageAgent, console: ConsoleDep) -> HTMLResponse:
    return console.page(request, "_queue_rows.html", **await queue_values(request, console, agent))


@router.get("/reports/assist", response_class=HTMLResponse)
async def assist_report_page(request: Request, agent: PageAgent,
                             console: ConsoleDep) -> HTMLResponse:
    async with console.reading() as conn:
        report = await assist_usefulness(conn, agent.business_units)
    return console.page(request, "assist_report.html", agent=agent, report=report)


def latest_decision(decisions: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    """The stage's most recent decision (a ticket sent back has one per attempt)."""
    return next((d for d in reversed(decisions) if d["stage"] == stage), None)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_page(request: Request, ticket_id: str, agent: PageAgent, console: ConsoleDep,
                      notice_code: Annotated[str | None, Query(alias="notice")] = None,
                      error_code: Annotated[str | None, Query(alias="error")] = None
                      ) -> Response:
    """A ticket with everything about it; `notice` and `error` are codes of fixed messages,
    their blanks filled from the stored ticket."""
    try:
        data = await console.detail(agent, ticket_id)
    except HTTPException:
        answered = await answered_page(request, console, agent, ticket_id, error_code)
        return answered or console.page(request, "missing.html", status_code=404, agent=agent,
                                        ticket_id=ticket_id)
    async with console.reading() as conn:
        colleagues = [a.name for a in await list_agents(conn, [data["business_unit"]])
                      if a.name != agent.name]
    classification = data["envelope"].get("classification") or {}
    likely = [alt["intent"] for alt in classification.get("alternatives", [])]
    return console.page(
        request, "ticket.html", agent=agent, t=data, now=utcnow(),
        mine=data["claimed_by"] == agent.name, colleagues=colleagues, likely_intents=likely,
        reopenable=data["status"] not in (OPEN, CLAIMED)
        and await console.automatic_answer(agent, ticket_id) is not None,
        other_intents=[i for i in known_intents() if i not in likely],
        route_decision=latest_decision(data["decisions"], "router"),
        verifier_decision=latest_decision(data["decisions"], "verifier"),
        notice=notice(notice_code, ticket_id=data["ticket_id"],
                      lease_minutes=console.settings.lease_minutes,
                      intent=intent_label(data["intent"]) if data.get("intent") else "-"),
        error=error(error_code))
