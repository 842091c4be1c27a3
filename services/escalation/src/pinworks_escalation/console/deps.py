"""Who is asking: the signed-in agent of a request, from the server-side session of the
cookie (pages and API) or of an `Authorization: Bearer` token (API), and the console the
request belongs to.

A state-changing request authenticated by the cookie must also carry the session's CSRF token
(form field `csrf_token` or header `X-CSRF-Token`): a browser sends the cookie on its own, the
token only the console's own pages. A bearer token is never sent by a browser on its own, so
it needs none. The Origin check of every state-changing request is in `security`.
"""

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from pinworks_escalation.console.security import same_token
from pinworks_escalation.console.work import Console
from pinworks_escalation.queue import Agent
from pinworks_escalation.signin import Session, session_of

COOKIE = "pinworks_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthenticated(Exception):
    """No valid session."""


def console_of(request: Request) -> Console:
    """The console that serves this request (`create_console` keeps it in the app's state)."""
    return cast(Console, request.app.state.console)


ConsoleDep = Annotated[Console, Depends(console_of)]


@dataclass(frozen=True)
class Credential:
    token: str
    by_cookie: bool


def credential_of(request: Request) -> Credential | None:
    """The bearer token if the request has one, else the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential(value.strip(), by_cookie=False)
    cookie = request.cookies.get(COOKIE)
    return Credential(cookie, by_cookie=True) if cookie else None


async def _session(request: Request, console: Console, cookie_only: bool) -> Session | None:
    credential = credential_of(request)
    if credential is None or (cookie_only and not credential.by_cookie):
        return None
    async with console.reading() as conn:
        session = await session_of(conn, credential.token)
    if session is None:
        return None
    if credential.by_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and "form" in request.headers.get("content-type", ""):
            sent = str((await request.form()).get(CSRF_FIELD) or "")
        if not same_token(sent, session.csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token")
    request.state.session = session
    return session


async def api_agent(request: Request, console: ConsoleDep) -> Agent:
    """The agent of the bearer token or the session cookie; 401 otherwise."""
    session = await _session(request, console, cookie_only=False)
    if session is None:
        raise HTTPException(401, "sign in: POST /api/session (cookie) or POST /api/tokens "
                            "(Authorization: Bearer)", headers={"WWW-Authenticate": "Bearer"})
    return session.agent


async def page_agent(request: Request, console: ConsoleDep) -> Agent:
    """The agent of the session cookie; without one, pages send the agent to sign in."""
    session = await _session(request, console, cookie_only=True)
    if session is None:
        raise Unauthenticated()
    return session.agent


ApiAgent = Annotated[Agent, Depends(api_agent)]
PageAgent = Annotated[Agent, Depends(page_agent)]


def client_address(request: Request) -> str | None:
    """The peer's address, the throttle's key per address."""
    return request.client.host if request.client else None


def secure_cookie(console: Console, request: Request) -> bool:
    """Secure unless configured otherwise or reached on a loopback name."""
    if console.settings.secure_cookies is not None:
        return console.settings.secure_cookies
    return (request.url.hostname or "") not in {"localhost", "127.0.0.1", "::1"}


def set_session(console: Console, request: Request, response: Response, token: str) -> None:
    """Sign the agent in: the response carries their session cookie."""
    response.set_cookie(
        COOKIE, token, max_age=int(console.settings.session_hours * 3600), path="/",
        httponly=True, samesite="lax", secure=secure_cookie(console, request))


def clear_session(console: Console, request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=secure_cookie(console, request))
