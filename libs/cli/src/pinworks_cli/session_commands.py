"""`pinworks login`, `logout` and `whoami`: an agent signs in on this terminal at the
escalation console, the same sign-in (argon2id, the throttle per name and per address) as the
console's, and the queue commands then act as that agent (`agent_session`)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated

import typer

PASSWORD_ENV = "PINWORKS_AGENT_PASSWORD"


def login(
    name: Annotated[str | None, typer.Argument(help="Your agent name; asked for when not given.")
                    ] = None,
) -> None:
    """Sign in as an agent: the console's short-lived token (PINWORKS_AGENT_TOKEN_HOURS) is
    kept in a file only you can read. The password is asked for (or PINWORKS_AGENT_PASSWORD)."""
    from pinworks_common.commands import agent_session as session
    from pinworks_common.commands.platform import PlatformUnavailable, fail

    name = name or typer.prompt("Agent")
    password = os.environ.get(PASSWORD_ENV) or typer.prompt("Password", hide_input=True)
    try:
        url = session.console_url()
        answer = session.call(url, "POST", "/api/tokens",
                              body={"name": name, "password": password, "kind": "cli"})
    except PlatformUnavailable as error:
        fail(str(error))
    except session.ConsoleRefusal as refusal:
        wait = refusal.headers.get("retry-after")
        session.refuse(refusal.detail + (f" (in {wait} s)" if refusal.status == 429 and wait
                                         else ""))
    _end_previous()
    data = answer.data
    token = session.AgentToken(url, data["agent"], tuple(data["business_units"]), data["token"],
                               datetime.fromisoformat(data["expires_at"]))
    path = session.save_token(token)
    typer.echo(f"signed in as {token.agent} ({token.units()}) at {url} until "
               f"{token.expires_at:%Y-%m-%d %H:%M %Z}; token in {path} (mode 0600)")


def _end_previous() -> None:
    """A new sign-in ends the one it replaces (best effort: it expires on its own anyway)."""
    from pinworks_common.commands import agent_session

    try:
        old = agent_session.read_token()
        agent_session.call(old.console_url, "DELETE", "/api/session", token=old.token, timeout=5)
    except Exception:  # noqa: BLE001 - nothing to end, or the console cannot be told
        return


def logout() -> None:
    """Sign out: the console revokes the token at once, and its file is deleted."""
    from pinworks_common.commands import agent_session as session
    from pinworks_common.commands.platform import PlatformUnavailable, fail

    try:
        token = session.read_token()
    except session.NotSignedIn:
        session.forget_token()
        typer.echo("not signed in on this terminal")
        return
    try:
        session.call(token.console_url, "DELETE", "/api/session", token=token.token)
        ended = "the console revoked the token"
    except session.ConsoleRefusal as refusal:
        if refusal.status != 401:
            session.refuse(refusal.detail)
        ended = "the token had already ended (expired, revoked or a new password)"
    except PlatformUnavailable as error:
        fail(f"{error}; the token was not revoked (it works until "
             f"{token.expires_at:%Y-%m-%d %H:%M %Z}): run `pinworks logout` again")
    session.forget_token()
    typer.echo(f"signed out {token.agent}: {ended}")


def whoami() -> None:
    """The agent signed in on this terminal, as the console sees them now."""
    from pinworks_common.commands.agent_session import as_agent, stored_token

    me = as_agent("GET", "/api/me").data
    typer.echo(f"{me['agent']} ({', '.join(me['business_units'])}) until "
               f"{stored_token().expires_at:%Y-%m-%d %H:%M %Z}")
