"""Signed in as an agent on this terminal: `pinworks login` keeps a short-lived token of the
escalation console (`POST /api/tokens`, kind `cli`, `PINWORKS_AGENT_TOKEN_HOURS`) in a file
only its owner may read, and every queue command calls the console's API with it.

So a terminal sees and does exactly what the console lets that agent see and do: the same
business-unit scoping, the same sign-in throttle, the same refusals in the same words, checked
by the console on every call. The queue commands need no database role at all.

The token file names the console that issued it; it is never sent anywhere else.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

from pinworks_common.commands.platform import (
    START_HINT,
    PlatformUnavailable,
    fail,
    find_run_env,
    read_env_file,
)

TOKEN_FILE_ENV = "PINWORKS_AGENT_TOKEN_FILE"
CONSOLE_URL_ENV = "ESCALATION_URL"
LOGIN_HINT = "run `pinworks login`"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class NotSignedIn(Exception):
    """No usable sign-in on this terminal; the message says why and what to do."""


class ConsoleRefusal(Exception):
    """The console answered with an error: its status and its own words."""

    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


@dataclass(frozen=True)
class AgentToken:
    """What `pinworks login` stored: which console, which agent, the bearer token, until when."""

    console_url: str
    agent: str
    business_units: tuple[str, ...]
    token: str
    expires_at: datetime

    def to_json(self) -> str:
        return json.dumps({"console_url": self.console_url, "agent": self.agent,
                           "business_units": list(self.business_units), "token": self.token,
                           "expires_at": self.expires_at.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> AgentToken:
        data = json.loads(text)
        return cls(str(data["console_url"]), str(data["agent"]),
                   tuple(data["business_units"]), str(data["token"]),
                   datetime.fromisoformat(data["expires_at"]))

    def units(self) -> str:
        return ", ".join(self.business_units)


def token_file() -> Path:
    """`PINWORKS_AGENT_TOKEN_FILE`, else `$XDG_STATE_HOME/pinworks/agent-token.json`
    (`~/.local/state` without XDG_STATE_HOME)."""
    given = os.environ.get(TOKEN_FILE_ENV)
    if given:
        return Path(given).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pinworks" / "agent-token.json"


def console_url() -> str:
    """The console's base URL: `ESCALATION_URL`, else the nearest `.run/env`'s. Plain http
    only to this machine: a password and a bearer token never cross a network in clear."""
    url = os.environ.get(CONSOLE_URL_ENV)
    if not url:
        env_file = find_run_env()
        url = read_env_file(env_file).get(CONSOLE_URL_ENV) if env_file else None
    if not url:
        raise PlatformUnavailable(f"no escalation console to talk to: {CONSOLE_URL_ENV} is not "
                                  f"set and no .run/env in {Path.cwd()} or above has it; "
                                  f"{START_HINT}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlatformUnavailable(f"{CONSOLE_URL_ENV}={url} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise PlatformUnavailable(
            f"{CONSOLE_URL_ENV}={url} is plain http to another machine: the password and the "
            "token would cross the network unencrypted; use the console's https:// address")
    return url.rstrip("/")


def save_token(token: AgentToken, path: Path | None = None) -> Path:
    """Write the token readable by its owner only (0600, in a 0700 directory), atomically."""
    path = path or token_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.to_json().encode())
    finally:
        os.close(fd)
    os.replace(partial, path)
    return path


def read_token(path: Path | None = None) -> AgentToken:
    """The stored sign-in as it is (`pinworks logout` revokes even one it would not use), or
    NotSignedIn when there is none it can read."""
    path = path or token_file()
    if not path.exists():
        raise NotSignedIn(f"not signed in on this terminal: {LOGIN_HINT}")
    try:
        return AgentToken.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        raise NotSignedIn(f"{path} holds no sign-in this CLI can read: {LOGIN_HINT}") from None


def stored_token(path: Path | None = None) -> AgentToken:
    """The stored sign-in, or NotSignedIn: none, readable by others, unreadable or expired."""
    path = path or token_file()
    token = read_token(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NotSignedIn(f"{path} may be read by others (mode {stat.S_IMODE(mode):o}), so its "
                          f"token is not used: `pinworks logout` and {LOGIN_HINT}")
    if token.expires_at <= datetime.now(UTC):
        raise NotSignedIn(f"your sign-in as {token.agent} expired at "
                          f"{token.expires_at:%Y-%m-%d %H:%M} UTC: {LOGIN_HINT}")
    return token


def forget_token(path: Path | None = None) -> None:
    (path or token_file()).unlink(missing_ok=True)


def _detail(body: bytes, status: int) -> str:
    """The console's own words for an error (FastAPI's `detail`)."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # a validation error: each problem's message
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                           for d in detail)
    return str(detail) if detail else f"the console answered HTTP {status}"


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    data: Any


def _opener() -> Any:
    """urllib without following redirects: a redirect would carry the bearer token (and a
    password) to wherever it points."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def call(base_url: str, method: str, path: str, *, token: str | None = None,
         body: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
         timeout: float = 30) -> Answer:
    """One console API call; an error status is a ConsoleRefusal, no answer PlatformUnavailable.
    Header names in the answer are lower case."""
    import urllib.error
    import urllib.request

    wanted = {k: v for k, v in (query or {}).items() if v is not None}
    url = base_url + path + (f"?{urllib.parse.urlencode(wanted)}" if wanted else "")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener().open(request, timeout=timeout) as response:
            raw = response.read()
            return Answer(response.status, _lower(response.headers),
                          json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raise ConsoleRefusal(error.code, _detail(error.read(), error.code),
                             _lower(error.headers)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PlatformUnavailable(f"cannot reach the escalation console at {base_url} "
                                  f"({reason}): {START_HINT}, or set {CONSOLE_URL_ENV}") from None


def as_agent(method: str, path: str, *, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None) -> Answer:
    """A console API call as the signed-in agent. Not signed in, or the console no longer
    accepts the token: exit 1 saying so; refused: exit 1 with the console's words;
    unreachable: exit 2."""
    try:
        here = console_url()
        token = stored_token()
        if token.console_url != here:
            raise NotSignedIn(f"you signed in at {token.console_url}, not at {here} "
                              f"({CONSOLE_URL_ENV}): {LOGIN_HINT} for this console")
        return call(here, method, path, token=token.token, body=body, query=query)
    except NotSignedIn as error:
        refuse(str(error))
    except PlatformUnavailable as error:
        fail(str(error))
    except ConsoleRefusal as refusal:
        if refusal.status == 401:
            refuse("the console no longer accepts your sign-in (signed out, expired or the "
                   f"password changed): {LOGIN_HINT}")
        refuse(refusal.detail)


def refuse(message: str) -> NoReturn:
    """A refusal on stderr and exit code 1 (infrastructure failures exit 2, see `fail`)."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(1)
