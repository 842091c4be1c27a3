"""The agents' console and REST API, served by the escalation service in its own event loop.

Server-rendered pages (Jinja2, no front-end build) and a JSON API under `/api` (OpenAPI at
`/openapi.json`, docs at `/docs`) share one rule: an agent sees and acts only on tickets of
the business units listed for them in the `agents` table. A ticket of another unit answers
404, exactly like a ticket that does not exist.
"""


import contextlib
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

import anyio
import uvicorn
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.contracts import utcnow
from pinworks_common.intents import UnknownIntent, intent_label, known_intents, validate_intent
from pinworks_common.metrics import until_commit
from pinworks_escalation.assist import compare, suggestions_for
from pinworks_escalation.auth import Sessions, verify_password
from pinworks_escalation.queue import (
    SORTS,
    STATUS_FILTERS,
    Agent,
    NotQueued,
    QueueError,
    QueueItem,
    QueueQuery,
    assist_usefulness,
    claim,
    count_queue,
    customer_history,
    get_agent,
    get_item,
    list_agents,
    list_queue,
    reassign,
    release,
    resolve,
    send_back,
    ticket_context,
)
from pinworks_escalation.schemas import (
    AssistUsefulness,
    Correction,
    Me,
    QueueEntry,
    Reassignment,
    Reply,
    ResolvedOutcome,
    SentBack,
    SignIn,
    TicketDetail,
)
from pinworks_escalation.settings import EscalationSettings

log = logging.getLogger("pinworks.escalation.console")

COOKIE = "pinworks_session"
PAGE_SIZE = 50
"""Tickets per queue page."""
FILTER_KEYS = ("q", "status", "intent", "unit", "sort", "page")
TEMPLATES = Path(__file__).with_name("templates")
T = TypeVar("T")


class Unauthenticated(Exception):
    """No valid session or credentials."""


# ---------------------------------------------------------------- the application


def create_console(engine: AsyncEngine, settings: EscalationSettings) -> FastAPI:
    secret = settings.session_secret
    if not secret:
        log.warning("ESCALATION_SESSION_SECRET is unset: console sessions end on restart")
        secret = secrets.token_urlsafe(32)
    sessions = Sessions(secret, settings.session_hours * 3600)
    lease = timedelta(minutes=settings.lease_minutes)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["when"] = _when
    templates.env.filters["intent_label"] = intent_label
    templates.env.filters["stamp"] = _stamp
    templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, default=str)
    basic = HTTPBasic(auto_error=False)

    app = FastAPI(
        title="pinworks escalation console",
        version="0.1.0",
        description="The human queue: agents see only the tickets of their business units. "
        "Authenticate with the session cookie from `POST /api/session` or with HTTP Basic.",
    )

    @contextlib.asynccontextmanager
    async def reading() -> AsyncIterator[AsyncConnection]:
        async with engine.connect() as conn:
            yield conn

    async def agent_named(name: str | None) -> Agent | None:
        if not name:
            return None
        async with reading() as conn:
            return await get_agent(conn, name)

    async def check_password(name: str, password: str) -> Agent | None:
        agent = await agent_named(name)
        ok = await anyio.to_thread.run_sync(
            verify_password, agent.password_hash if agent else None, password)
        return agent if ok and agent is not None else None

    async def api_agent(
        request: Request,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    ) -> Agent:
        agent = await agent_named(sessions.agent_of(request.cookies.get(COOKIE)))
        if agent is None and credentials is not None:
            agent = await check_password(credentials.username, credentials.password)
        if agent is None:
            raise HTTPException(401, "sign in: POST /api/session or HTTP Basic",
                                headers={"WWW-Authenticate": 'Basic realm="pinworks"'})
        return agent

    async def page_agent(request: Request) -> Agent:
        agent = await agent_named(sessions.agent_of(request.cookies.get(COOKIE)))
        if agent is None:
            raise Unauthenticated()
        return agent

    ApiAgent = Annotated[Agent, Depends(api_agent)]
    PageAgent = Annotated[Agent, Depends(page_agent)]

    @app.exception_handler(Unauthenticated)
    async def to_login(request: Request, _: Unauthenticated) -> Response:
        if request.url.path.startswith("/fragments/"):
            return Response(status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    def set_session(response: Response, agent: Agent) -> None:
        response.set_cookie(
            COOKIE, sessions.issue(agent.name), max_age=int(sessions.max_age_seconds),
            httponly=True, samesite="lax", secure=settings.secure_cookies)

    async def act(action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run one agent action in its own transaction; queue refusals become HTTP errors."""
        try:
            with until_commit():  # an agent's resolution counts its cost and outcome once
                async with engine.begin() as conn:
                    return await action(conn)
        except NotQueued as error:
            raise HTTPException(404, str(error)) from None
        except QueueError as error:
            raise HTTPException(409, str(error)) from None

    async def scoped_item(agent: Agent, ticket_id: str) -> QueueItem:
        async with reading() as conn:
            item = await get_item(conn, ticket_id, business_units=agent.business_units)
        if item is None:
            raise HTTPException(404, f"no escalated ticket {ticket_id}")
        return item

    async def detail(agent: Agent, ticket_id: str) -> dict[str, Any]:
        item = await scoped_item(agent, ticket_id)
        envelope = item.context.get("envelope", {})
        customer_id = (envelope.get("ticket") or {}).get("customer_id")
        async with reading() as conn:
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

    async def queue_of(agent: Agent, query: QueueQuery | None = None) -> list[QueueItem]:
        async with reading() as conn:
            return await list_queue(conn, business_units=agent.business_units,
                                    query=query or QueueQuery(limit=PAGE_SIZE))

    async def queue_page_of(agent: Agent, query: QueueQuery) -> tuple[list[QueueItem], int]:
        async with reading() as conn:
            items = await list_queue(conn, business_units=agent.business_units, query=query)
            total = await count_queue(conn, query, business_units=agent.business_units)
        return items, total

    # ------------------------------------------------------------ REST API

    @app.post("/api/session", response_model=Me, tags=["session"])
    async def api_sign_in(body: SignIn, response: Response) -> Me:
        """Sign in; the response sets the session cookie."""
        agent = await check_password(body.name, body.password)
        if agent is None:
            raise HTTPException(401, "unknown agent or wrong password")
        set_session(response, agent)
        return Me(agent=agent.name, business_units=list(agent.business_units))

    @app.delete("/api/session", status_code=204, tags=["session"])
    async def api_sign_out() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/api/me", response_model=Me, tags=["session"])
    async def api_me(agent: ApiAgent) -> Me:
        return Me(agent=agent.name, business_units=list(agent.business_units))

    @app.get("/api/queue", response_model=list[QueueEntry], tags=["queue"])
    async def api_queue(
        agent: ApiAgent, response: Response, include_resolved: bool = False,
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
        items, total = await queue_page_of(agent, query)
        response.headers["X-Total-Count"] = str(total)
        return [item.as_dict() for item in items]

    @app.get("/api/intents", response_model=list[dict[str, str]], tags=["queue"])
    async def api_intents(_: ApiAgent) -> list[dict[str, str]]:
        """The intents the classifier knows, with the names agents read."""
        return [{"intent": i, "label": intent_label(i)} for i in known_intents()]

    @app.get("/api/reports/assist", response_model=list[AssistUsefulness], tags=["queue"])
    async def api_assist_report(agent: ApiAgent) -> list[dict[str, Any]]:
        """How useful the suggested replies are, per intent, in the agent's business units."""
        async with reading() as conn:
            return await assist_usefulness(conn, agent.business_units)

    @app.get("/api/tickets/{ticket_id}", response_model=TicketDetail, tags=["tickets"])
    async def api_ticket(ticket_id: str, agent: ApiAgent) -> dict[str, Any]:
        """The ticket with its whole context."""
        return await detail(agent, ticket_id)

    @app.post("/api/claim-next", response_model=QueueEntry, tags=["tickets"],
              responses={404: {"description": "nothing to claim"}})
    async def api_claim_next(agent: ApiAgent) -> dict[str, Any]:
        """Claim the most urgent claimable ticket of the agent's business units."""
        item = await act(lambda conn: claim(conn, agent.name,
                                            business_units=agent.business_units, lease=lease))
        if item is None:
            raise HTTPException(404, "nothing to claim")
        return item.as_dict()

    @app.post("/api/tickets/{ticket_id}/claim", response_model=QueueEntry, tags=["tickets"],
              responses={409: {"description": "claimed by someone else, or resolved"}})
    async def api_claim(ticket_id: str, agent: ApiAgent) -> dict[str, Any]:
        return (await claim_one(agent, ticket_id)).as_dict()

    async def claim_one(agent: Agent, ticket_id: str) -> QueueItem:
        item = await scoped_item(agent, ticket_id)
        claimed = await act(lambda conn: claim(conn, agent.name, ticket_id=ticket_id,
                                               business_units=agent.business_units, lease=lease))
        if claimed is None:
            if item.status == "resolved":
                raise HTTPException(409, f"{ticket_id} was already resolved by {item.resolved_by}")
            raise HTTPException(409, f"{ticket_id} is claimed by {item.claimed_by}")
        return claimed

    @app.post("/api/tickets/{ticket_id}/release", status_code=204, tags=["tickets"])
    async def api_release(ticket_id: str, agent: ApiAgent) -> Response:
        await act(lambda conn: release(conn, ticket_id, agent.name,
                                       business_units=agent.business_units))
        return Response(status_code=204)

    @app.post("/api/tickets/{ticket_id}/resolve", response_model=ResolvedOutcome,
              tags=["tickets"])
    async def api_resolve(ticket_id: str, body: Reply, agent: ApiAgent) -> dict[str, Any]:
        """Resolve with a reply: the `resolved` outcome (resolved_by = the agent) is published.
        How the reply differs from the suggestion it started from is recorded."""
        data = await detail(agent, ticket_id)
        offered = suggestions_for(data["envelope"], data["decisions"])
        assist = compare(body.reply, offered, body.suggestion) if offered else None
        outcome = await act(lambda conn: resolve(
            conn, ticket_id, agent.name, body.reply, agent_cost=settings.agent_cost_usd,
            business_units=agent.business_units, assist=assist))
        return {"outcome": outcome.model_dump(mode="json")}

    @app.post("/api/tickets/{ticket_id}/reassign", response_model=QueueEntry, tags=["tickets"])
    async def api_reassign(ticket_id: str, body: Reassignment, agent: ApiAgent) -> dict[str, Any]:
        """Hand the ticket to a colleague of the same business unit (they hold it with a lease)."""
        item = await act(lambda conn: reassign(conn, ticket_id, agent.name, body.agent,
                                               business_units=agent.business_units, lease=lease))
        return item.as_dict()

    @app.post("/api/tickets/{ticket_id}/send-back", response_model=SentBack, tags=["tickets"])
    async def api_send_back(ticket_id: str, body: Correction, agent: ApiAgent) -> dict[str, Any]:
        """Correct the intent: recorded as a labelled example; the ticket returns to the queue.
        Only an intent the classifier knows is accepted (422 names the nearest ones)."""
        await scoped_item(agent, ticket_id)
        try:
            intent = validate_intent(body.intent)
        except UnknownIntent as error:
            raise HTTPException(422, str(error)) from None
        return await act(lambda conn: send_back(conn, ticket_id, agent.name, intent,
                                                business_units=agent.business_units))

    # ------------------------------------------------------------ pages

    def page(request: Request, template: str, status_code: int = 200,
             **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, values, status_code=status_code)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", next=_safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(
        request: Request,
        name: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        agent = await check_password(name.strip(), password)
        if agent is None:
            return page(request, "login.html", status_code=401, next=_safe_next(next),
                        error="Unknown agent or wrong password.", name=name)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session(response, agent)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    def page_query(request: Request) -> tuple[QueueQuery, dict[str, str], str | None]:
        """The queue page's search, filters, order and page from its query string; a value
        that makes no sense falls back to the default, with a message."""
        params = request.query_params
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
        return query, wanted, problem

    async def queue_values(request: Request, agent: Agent) -> dict[str, Any]:
        query, wanted, problem = page_query(request)
        items, total = await queue_page_of(agent, query)
        number = int(wanted["page"])
        pages = max(1, -(-total // PAGE_SIZE))
        kept = {k: v for k, v in wanted.items() if v and k != "page"}
        return {"agent": agent, "items": items, "now": utcnow(), "total": total,
                "page_number": number, "pages": pages, "first_row": query.offset + 1,
                "last_row": query.offset + len(items), "filters": wanted,
                "filter_query": urlencode(kept), "query_error": problem,
                "page_link": lambda n: "/?" + urlencode({**kept, "page": n}),
                "intents": known_intents(), "sorts": list(SORTS),
                "statuses": list(STATUS_FILTERS)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page(request: Request, agent: PageAgent, notice: str | None = None,
                         error: str | None = None) -> HTMLResponse:
        values = await queue_values(request, agent)
        return page(request, "queue.html", refresh_seconds=settings.queue_refresh_seconds,
                    notice=notice, error=error or values.pop("query_error"), **values)

    @app.get("/fragments/queue", response_class=HTMLResponse, include_in_schema=False)
    async def queue_fragment(request: Request, agent: PageAgent) -> HTMLResponse:
        return page(request, "_queue_rows.html", **await queue_values(request, agent))

    @app.get("/reports/assist", response_class=HTMLResponse, include_in_schema=False)
    async def assist_report_page(request: Request, agent: PageAgent) -> HTMLResponse:
        async with reading() as conn:
            report = await assist_usefulness(conn, agent.business_units)
        return page(request, "assist_report.html", agent=agent, report=report)

    @app.get("/tickets/{ticket_id}", response_class=HTMLResponse, include_in_schema=False)
    async def ticket_page(request: Request, ticket_id: str, agent: PageAgent,
                          notice: str | None = None, error: str | None = None) -> Response:
        try:
            data = await detail(agent, ticket_id)
        except HTTPException:
            return page(request, "missing.html", status_code=404, agent=agent,
                        ticket_id=ticket_id)
        async with reading() as conn:
            colleagues = [a.name for a in await list_agents(conn, [data["business_unit"]])
                          if a.name != agent.name]
        route_decision = next((d for d in reversed(data["decisions"]) if d["stage"] == "router"),
                              None)
        verifier_decision = next(
            (d for d in reversed(data["decisions"]) if d["stage"] == "verifier"), None)
        cl = data["envelope"].get("classification") or {}
        likely = [alt["intent"] for alt in cl.get("alternatives", [])]
        return page(request, "ticket.html", agent=agent, t=data, now=utcnow(),
                    mine=data["claimed_by"] == agent.name, colleagues=colleagues,
                    likely_intents=likely,
                    other_intents=[i for i in known_intents() if i not in likely],
                    route_decision=route_decision, verifier_decision=verifier_decision,
                    notice=notice, error=error)

    async def page_action(ticket_id: str, action: Callable[[], Awaitable[Any]],
                          done: str) -> Response:
        target = f"/tickets/{quote(ticket_id)}"
        try:
            await action()
        except HTTPException as error:
            if error.status_code == 404:
                return RedirectResponse(f"/?error={quote(str(error.detail))}", status_code=303)
            return RedirectResponse(f"{target}?error={quote(str(error.detail))}", status_code=303)
        return RedirectResponse(f"{target}?notice={quote(done)}", status_code=303)

    @app.post("/tickets/{ticket_id}/claim", include_in_schema=False)
    async def claim_form(ticket_id: str, agent: PageAgent) -> Response:
        return await page_action(ticket_id, lambda: claim_one(agent, ticket_id),
                                 f"You hold {ticket_id} for {settings.lease_minutes} minutes.")

    @app.post("/claim-next", include_in_schema=False)
    async def claim_next_form(agent: PageAgent) -> Response:
        item = await act(lambda conn: claim(conn, agent.name,
                                            business_units=agent.business_units, lease=lease))
        if item is None:
            return RedirectResponse(f"/?notice={quote('Nothing to claim.')}", status_code=303)
        return RedirectResponse(f"/tickets/{quote(item.ticket_id)}?notice="
                                f"{quote('You hold this ticket.')}", status_code=303)

    @app.post("/tickets/{ticket_id}/release", include_in_schema=False)
    async def release_form(ticket_id: str, agent: PageAgent) -> Response:
        return await page_action(ticket_id, lambda: api_release(ticket_id, agent),
                                 "Released to the queue.")

    @app.post("/tickets/{ticket_id}/resolve", include_in_schema=False)
    async def resolve_form(ticket_id: str, agent: PageAgent,
                           reply: Annotated[str, Form()],
                           suggestion: Annotated[str, Form()] = "") -> Response:
        async def run() -> None:
            if not reply.strip():
                raise HTTPException(409, "Write a reply to the customer first.")
            await api_resolve(ticket_id, Reply(reply=reply, suggestion=suggestion[:200] or None),
                              agent)
        return await page_action(ticket_id, run, "Resolved: the reply is on its way.")

    @app.post("/tickets/{ticket_id}/reassign", include_in_schema=False)
    async def reassign_form(ticket_id: str, agent: PageAgent,
                            to_agent: Annotated[str, Form()]) -> Response:
        return await page_action(
            ticket_id, lambda: api_reassign(ticket_id, Reassignment(agent=to_agent), agent),
            f"Reassigned to {to_agent}.")

    @app.post("/tickets/{ticket_id}/send-back", include_in_schema=False)
    async def send_back_form(ticket_id: str, agent: PageAgent,
                             intent: Annotated[str, Form()]) -> Response:
        return await page_action(
            ticket_id, lambda: api_send_back(ticket_id, Correction(intent=intent), agent),
            f"Intent corrected to {intent_label(intent.strip())}; kept as a labelled example.")

    return app


def _safe_next(target: str) -> str:
    """Only same-site paths: a sign-in link cannot bounce the agent to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _stamp(value: str | datetime | None) -> str:
    """An absolute time, for moments whose distance from now no longer matters."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _when(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    delta = moment - utcnow()
    seconds = int(delta.total_seconds())
    span = abs(seconds)
    stamp = moment.strftime("%Y-%m-%d %H:%M UTC")
    if span < 5:
        return f"{stamp} (just now)"
    if span < 60:
        text = f"{span}s"
    elif span < 3600:
        text = f"{span // 60}m"
    elif span < 86400:
        text = f"{span // 3600}h {span % 3600 // 60}m"
    else:
        text = f"{span // 86400}d {span % 86400 // 3600}h"
    return f"{stamp} (in {text})" if seconds >= 0 else f"{stamp} ({text} ago)"


# ---------------------------------------------------------------- serving


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the FastStream event loop: FastStream owns the process signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """Starts and stops the console in the running event loop; a port in use fails the start."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._config = uvicorn.Config(app, host=host, port=port, lifespan="off",
                                      access_log=False, log_config=None)
        self._host, self._port = host, port
        self._server: _EmbeddedServer | None = None
        self._serving: Any = None

    async def start(self) -> None:
        import asyncio

        sock = socket.create_server((self._host, self._port), reuse_port=False)
        self._server = _EmbeddedServer(self._config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the console stopped while starting")
            await asyncio.sleep(0.02)
        log.info("agents' console on http://%s:%d/", self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
