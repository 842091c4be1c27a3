"""The engine pings a pooled connection only after it sat idle, and replaces one Postgres
closed meanwhile (a restart, an administrator) without the caller seeing an error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db import engine as engine_module
from pinworks_common.db.engine import create_engine

pytestmark = pytest.mark.integration


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest_asyncio.fixture
async def engines(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[Callable[[float], AsyncEngine]]:
    """An engine pinging after the given idle time; `terminate` closes its connection."""
    made: list[AsyncEngine] = []

    def engine_pinging_after(idle_seconds: float) -> AsyncEngine:
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", idle_seconds)
        made.append(create_engine(migrated_database_url, pool_size=1))
        return made[-1]

    yield engine_pinging_after
    for engine in made:
        await engine.dispose()


async def terminate(engine: AsyncEngine) -> int:
    """Close the engine's pooled connection from the server's side; return its backend pid."""
    pid = await backend_pid(engine)
    admin = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    finally:
        await admin.dispose()
    return pid


async def test_an_idle_connection_closed_by_the_server_is_replaced(
        engines: Callable[[float], AsyncEngine]) -> None:
    engine = engines(0.0)
    closed = await terminate(engine)
    assert await backend_pid(engine) != closed


async def test_a_connection_back_from_use_is_not_pinged(
        engines: Callable[[float], AsyncEngine]) -> None:
    engine = engines(3600.0)
    closed = await terminate(engine)
    with pytest.raises(Exception, match="connection"):
        await backend_pid(engine)  # not pinged: its first statement finds it closed
    assert await backend_pid(engine) != closed, "the failure invalidated it"


async def test_a_healthy_idle_connection_passes_its_ping_and_is_kept(
        engines: Callable[[float], AsyncEngine]) -> None:
    engine = engines(0.0)
    first = await backend_pid(engine)
    assert await backend_pid(engine) == first, "pinged, answered, handed out as it was"
