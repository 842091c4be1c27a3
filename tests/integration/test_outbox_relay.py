"""The outbox relay publishes a row as soon as the transaction that wrote it commits (the write
notifies it), not at its next poll; a rolled-back write tells it nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import CONSOLE
from pinworks_common.ledger import Publication
from pinworks_common.outbox import OutboxRelay
from pinworks_escalation.queue.handoff import to_outbox
from tests.conftest import Database

pytestmark = pytest.mark.integration

NEVER_POLLS = 3600.0


@pytest_asyncio.fixture
async def engines(own_database: Database) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The console's (it writes the rows) and the escalation service's (its relay sends them),
    in a database of the module's own: another relay on the same outbox (an escalation service
    that an e2e test started on the session's database) takes rows before this one sees them."""
    console = create_engine(own_database.role_urls[CONSOLE], pool_size=1)
    service = create_engine(own_database.service_url("escalation"), pool_size=2)
    yield console, service
    await console.dispose()
    await service.dispose()


def publication(msg_id: str) -> Publication:
    return Publication(subject="tickets.outcome.resolved.support", payload=b"{}", msg_id=msg_id,
                       stream="PINWORKS_OUTCOMES")


async def test_a_committed_write_is_relayed_at_once(
        engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    console, service = engines
    sent: list[str] = []
    arrived = asyncio.Event()

    async def publish(message: Publication) -> None:
        sent.append(message.msg_id)
        arrived.set()

    async def relayed(msg_id: str) -> None:
        while msg_id not in sent:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)

    async def write(msg_id: str) -> None:
        async with console.begin() as conn:
            await to_outbox(conn, publication(msg_id))

    first, rolled_back, second = (f"relay-{uuid.uuid4().hex}" for _ in range(3))
    relay = OutboxRelay(service, publish, interval_seconds=NEVER_POLLS)
    await relay.start()
    try:
        await write(first)
        await relayed(first)  # its first look, or a notification: it waits to be told now
        with pytest.raises(RuntimeError):
            async with console.begin() as conn:
                await to_outbox(conn, publication(rolled_back))
                raise RuntimeError("the agent's action failed")
        await write(second)
        await relayed(second)
        assert rolled_back not in sent
    finally:
        await relay.stop()
