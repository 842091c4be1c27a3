"""Async engine construction from a plain `postgresql://` URL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled connection idle this long is pinged before it is handed out (a restarted Postgres
has closed it); one handed back since is used as it is."""


def async_url(database_url: str) -> str:
    """Return the URL with the asyncpg driver, whatever scheme the operator wrote."""
    url = make_url(database_url)
    if url.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    engine = create_async_engine(
        async_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    ping_when_idle(engine.sync_engine.pool, PING_AFTER_IDLE_SECONDS)
    return engine


def ping_when_idle(pool: Pool, idle_seconds: float) -> None:
    """Ping a connection at checkout only when it sat in the pool `idle_seconds` or more.

    `pool_pre_ping` pings at every checkout: three round trips with asyncpg (BEGIN, a query,
    ROLLBACK) before each batch's transaction, in every service, although under load a
    connection comes back within milliseconds. A failed ping invalidates the pool (the server
    went away, so the other idle connections are gone too) and the checkout is retried with a
    new connection; a connection that died while in use fails its statement, which the stage
    runner retries as an infrastructure fault."""

    @event.listens_for(pool, "checkin")
    def remember_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["pinworks_checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in = record.info.get("pinworks_checked_in")
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:  # noqa: BLE001 - any failure means the connection is gone
            raise InvalidatePoolError(f"pooled connection failed its ping: {error!r}") from error
