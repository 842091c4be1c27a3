"""Who is asking: the signed-in agent of a request, from the session cookie (pages and API) or
HTTP Basic credentials (API only), and the console the request belongs to."""

from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from pinworks_escalation.console.work import Console
from pinworks_escalation.queue import Agent

COOKIE = "pinworks_session"
basic = HTTPBasic(auto_error=False)


class Unauthenticated(Exception):
    """No valid session or credentials."""


def console_of(request: Request) -> Console:
    """The console that serves this request (`create_console` keeps it in the app's state)."""
    return cast(Console, request.app.state.console)


ConsoleDep = Annotated[Console, Depends(console_of)]


async def api_agent(
    request: Request,
    console: ConsoleDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
) -> Agent:
    """The agent of the session cookie or of HTTP Basic credentials; 401 otherwise."""
    agent = await console.agent_named(console.sessions.agent_of(request.cookies.get(COOKIE)))
    if agent is None and credentials is not None:
        agent = await console.check_password(credentials.username, credentials.password)
    if agent is None:
        raise HTTPException(401, "sign in: POST /api/session or HTTP Basic",
                            headers={"WWW-Authenticate": 'Basic realm="pinworks"'})
    return agent


async def page_agent(request: Request, console: ConsoleDep) -> Agent:
    """The agent of the session cookie; without one, pages send the agent to sign in."""
    agent = await console.agent_named(console.sessions.agent_of(request.cookies.get(COOKIE)))
    if agent is None:
        raise Unauthenticated()
    return agent


ApiAgent = Annotated[Agent, Depends(api_agent)]
PageAgent = Annotated[Agent, Depends(page_agent)]


def set_session(console: Console, response: Response, agent: Agent) -> None:
    """Sign the agent in: the response carries their session cookie."""
    response.set_cookie(
        COOKIE, console.sessions.issue(agent.name),
        max_age=int(console.sessions.max_age_seconds),
        httponly=True, samesite="lax", secure=console.settings.secure_cookies)
