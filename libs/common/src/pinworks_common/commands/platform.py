"""Where a command finds NATS and Postgres, and what it says when it cannot reach them.

Every command that talks to the platform runs through `run_command`: a connection that fails, a
database without the schema or a missing platform is one line on stderr saying what is
unreachable and how to fix it (exit code 2), never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer

T = TypeVar("T")
RUN_ENV = Path(".run") / "env"
START_HINT = "start the platform with `make run` in the pinworks checkout, then `source .run/env`"


class PlatformUnavailable(Exception):
    """The platform could not be reached; the message is the whole explanation."""


@dataclass(frozen=True)
class Connections:
    """Where the platform is; a URL is None when neither the environment nor `.run/env` has it."""

    nats: str | None
    database: str | None
    source: str

    @property
    def nats_url(self) -> str:
        return self._require("NATS_URL", self.nats)

    @property
    def database_url(self) -> str:
        return self._require("DATABASE_URL", self.database)

    @staticmethod
    def _require(name: str, value: str | None) -> str:
        if not value:
            raise PlatformUnavailable(f"no platform to talk to: {name} is not set and no "
                                      f".run/env in {Path.cwd()} or above has it; {START_HINT}")
        return value


def find_run_env(start: Path | None = None) -> Path | None:
    """`.run/env` written by `pinworks run`, in this directory or the nearest parent."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / RUN_ENV
        if candidate.is_file():
            return candidate
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """Lines `export NAME='value'` as a dict."""
    found = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            found[name.strip()] = value.strip().strip("'\"")
    return found


def connections() -> Connections:
    """NATS_URL / DATABASE_URL from the environment, else from the nearest `.run/env`."""
    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    source = "the environment"
    if not (nats_url and database_url):
        env_file = find_run_env()
        if env_file is not None:
            written = read_env_file(env_file)
            nats_url = nats_url or written.get("NATS_URL")
            database_url = database_url or written.get("DATABASE_URL")
            source = str(env_file)
    return Connections(nats_url, database_url, source)


def redact(url: str) -> str:
    """The URL without its password, fit for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlstate(error: BaseException) -> str | None:
    seen: BaseException | None = error
    while seen is not None:
        for candidate in (seen, getattr(seen, "orig", None)):
            state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if isinstance(state, str):
                return state
        seen = seen.__cause__
    return None


def describe_failure(error: BaseException, conns: Connections | None) -> str | None:
    """One line for an infrastructure failure; None for anything else (a real bug)."""
    import nats.errors
    import nats.js.errors

    nats_at = f"NATS at {redact(conns.nats)}" if conns and conns.nats else "NATS"
    postgres_at = (f"Postgres at {redact(conns.database)}" if conns and conns.database
                   else "Postgres")
    where = f" (URLs from {conns.source})" if conns else ""
    state = _sqlstate(error)
    if state == "42P01":
        return (f"{postgres_at} has no pinworks tables{where}: run `pinworks db upgrade`, "
                f"or point DATABASE_URL at the platform's database ({START_HINT})")
    if state in ("28P01", "28000"):
        return f"{postgres_at} refused the login{where}: check the user and password in DATABASE_URL"
    if state == "3D000":
        return f"{postgres_at}: the database does not exist{where}; check DATABASE_URL"
    if isinstance(error, nats.js.errors.NoStreamResponseError | nats.js.errors.NotFoundError):
        return (f"{nats_at} has no pinworks streams{where}: is the platform running? "
                f"{START_HINT}")
    if isinstance(error, nats.errors.NoServersError | nats.errors.ConnectionClosedError
                  | nats.errors.TimeoutError | nats.errors.NoRespondersError):
        return f"cannot reach {nats_at}{where}: {START_HINT}, or set NATS_URL"
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(error, OSError | InterfaceError | OperationalError | TimeoutError) or (
            isinstance(error, DBAPIError) and error.connection_invalidated):
        return f"cannot reach {postgres_at}{where}: {START_HINT}, or set DATABASE_URL"
    return None


def run_command(coro: Coroutine[Any, Any, T]) -> T:
    """Run one async command against the platform; infrastructure failures become one line."""
    try:
        return asyncio.run(_watched(coro))
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except (PlatformUnavailable, NatsPermissionDenied) as unavailable:
        fail(str(unavailable))
    except Exception as error:  # translated below, or re-raised as the bug it is
        message = describe_failure(error, connections())
        if message is None:
            raise
        fail(message)
    raise AssertionError("unreachable")


def fail(message: str) -> NoReturn:
    """Print the one-line explanation on stderr and exit with code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def nats_client_environ() -> dict[str, str]:
    """Where a command's NATS credentials come from: the environment when it sets NATS_URL,
    else the nearest `.run/env` (the support platform's identity) under the environment's own
    NATS_* variables."""
    if os.environ.get("NATS_URL"):
        return dict(os.environ)
    env_file = find_run_env()
    return {**(read_env_file(env_file) if env_file else {}), **os.environ}


def platform_of_client() -> str:
    """The support platform this command acts as: `PINWORKS_PLATFORM` (`.run/env` sets
    `support`, the platform `make run` generates), which must be the platform whose NATS
    identity the command connects as (or the command connects as the operator)."""
    from pinworks_contracts.identities import DEFAULT_PLATFORM

    return nats_client_environ().get("PINWORKS_PLATFORM") or DEFAULT_PLATFORM


def submission_subject_of_client() -> str:
    """Where this command submits tickets: its platform's submission subject."""
    from pinworks_contracts.subjects import submission_subject

    return submission_subject(platform_of_client())


class NatsPermissionDenied(Exception):
    """The NATS server refused this identity a subject; the message says which and as whom."""


async def connect_nats(url: str, environ: Mapping[str, str] | None = None) -> Any:
    """A NATS connection that gives up quickly and quietly when the server is not there, with
    the credentials of `environ` (default: `nats_client_environ`). A permission violation
    (which the server sends asynchronously; the publish or subscription itself just sees no
    answer) stops the command at once: `run_command` then says which subject this identity may
    not use."""
    import nats

    from pinworks_common.nats_client import NatsClientSettings, connect_options

    environ = nats_client_environ() if environ is None else environ
    command = asyncio.current_task()

    async def on_error(error: Exception) -> None:
        if "permissions violation" in str(error).lower() and not _DENIED:
            who = NatsClientSettings.from_env(environ).method
            _DENIED.append(f"NATS at {redact(url)} refused this identity ({who}): "
                           f"{str(error).removeprefix('nats: ')}; use an identity allowed "
                           "to (`source .run/operator.env` for an operator's)")
            if command is not None:
                command.cancel()

    return await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2,
                              reconnect_time_wait=0.5, error_cb=on_error,
                              **connect_options(environ))


_DENIED: list[str] = []
"""The first permission violation of this process's NATS connections (a CLI process runs one
command)."""


async def _watched(coro: Coroutine[Any, Any, T]) -> T:
    """``coro``, with a NATS permission violation raised as NatsPermissionDenied."""
    try:
        return await coro
    except (asyncio.CancelledError, Exception):
        if _DENIED:
            raise NatsPermissionDenied(_DENIED[0]) from None
        raise


async def with_db(database_url: str, action: Callable[[Any], Awaitable[T]], *,
                  write: bool = False) -> T:
    """Run ``action`` on one connection (in a transaction when ``write``)."""
    from pinworks_common.db.engine import create_engine

    engine = create_engine(database_url, pool_size=1)
    try:
        if write:
            async with engine.begin() as conn:
                return await action(conn)
        async with engine.connect() as conn:
            return await action(conn)
    finally:
        await engine.dispose()


def nats_url() -> str:
    """NATS_URL: the environment first, else the nearest `.run/env` (else PlatformUnavailable)."""
    return connections().nats_url


def database_url() -> str:
    """DATABASE_URL: the environment first, else the nearest `.run/env` (else
    PlatformUnavailable)."""
    return connections().database_url


async def with_platform_db(action: Callable[[Any], Awaitable[T]], *, write: bool = False) -> T:
    """``action`` on one connection to the platform's database (see `with_db`)."""
    return await with_db(database_url(), action, write=write)
