"""The specialist stage under the real runner and Postgres: a handler call (a model that may take
minutes) runs with no database connection held, and its result is still recorded once, with its
cost, before the message is acknowledged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pinworks_common.db.engine import async_url, create_engine
from pinworks_common.stage import Publication, StageRunner
from pinworks_contracts.messages import (
    Classification,
    Draft,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_specialists.handlers import Declined
from pinworks_specialists.stage import SpecialistStage
from tests.conftest import Database
from tests.integration.test_stage_runner import FakeMsg

APPLICATION_NAME = "pinworks-under-test"


class ObservingHandler:
    """Declines at a price, noting how many of the engine's connections are checked out and how
    many sessions sit in an open transaction while it works."""

    name = "observing"
    version = "1"

    def __init__(self, engine: AsyncEngine, observer: AsyncEngine) -> None:
        self.engine = engine
        self.observer = observer
        self.calls = 0
        self.checked_out: list[int] = []
        self.open_transactions: list[int] = []

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        self.calls += 1
        self.checked_out.append(self.engine.pool.checkedout())  # type: ignore[attr-defined]
        async with self.observer.connect() as conn:
            count = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
            self.open_transactions.append(int(count.scalar_one()))
        return Declined("not mine", cost_usd=Decimal("0.25"))

    async def close(self) -> None:
        return None


@pytest_asyncio.fixture
async def engines(database: Database) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The runner's engine (the specialists' role), whose sessions carry a name the handler
    looks for, and a separate one (the superuser) for the handler's look at pg_stat_activity."""
    engine = create_async_engine(
        async_url(database.service_url("specialists")),
        pool_size=2,
        connect_args={"server_settings": {"application_name": APPLICATION_NAME}},
    )
    observer = create_engine(database.admin_url, pool_size=1)
    yield engine, observer
    await engine.dispose()
    await observer.dispose()


def envelope_message(ticket_id: str, seq: int, num_delivered: int = 1) -> FakeMsg:
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail", body="hello"),
        trace_id="0" * 32,
        received_at=datetime.now(UTC),
        classification=Classification(
            intent="card_arrival", confidence=0.9, alternatives=[], out_of_scope=False, model_version="t"
        ),
        route=RouteDecision(
            handler="observing", rule="r", reason="r", policy_version="p", fallbacks=["human"]
        ),
    )
    return FakeMsg(
        envelope.model_dump_json().encode(),
        seq,
        num_delivered=num_delivered,
        subject="pinworks.work.routed.observing",
    )


async def ledger_total(engine: AsyncEngine, ticket_id: str) -> Decimal:
    async with engine.connect() as conn:
        total = await conn.execute(
            text("SELECT coalesce(sum(amount_usd), 0) FROM cost_ledger WHERE ticket_id = :t"),
            {"t": ticket_id},
        )
        return Decimal(total.scalar_one())


async def test_handler_calls_hold_no_connection_and_are_recorded_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, observer = engines
    handler = ObservingHandler(engine, observer)
    published: list[Publication] = []

    async def publish(publication: Publication) -> None:
        published.append(publication)

    runner = StageRunner(SpecialistStage(handler), engine, publish, max_deliveries=3)
    ticket_ids = [f"{uuid.uuid4().hex[:10]}-{n}" for n in range(3)]
    first = [envelope_message(t, n + 1) for n, t in enumerate(ticket_ids)]
    await runner.process(first)  # type: ignore[arg-type]

    assert handler.calls == 3
    assert handler.checked_out == [0, 0, 0], "a connection was held during the handler call"
    assert handler.open_transactions == [0, 0, 0], "a transaction stayed open during the call"
    assert all(m.acked for m in first)
    assert [await ledger_total(engine, t) for t in ticket_ids] == [Decimal("0.25")] * 3

    again = envelope_message(ticket_ids[0], 1, num_delivered=2)
    await runner.process([again])  # type: ignore[list-item]
    assert again.acked
    assert handler.calls == 3, "a redelivered ticket was handled again"
    assert await ledger_total(engine, ticket_ids[0]) == Decimal("0.25")
    first_ids = [p.msg_id for p in published[:3]]
    assert published[3].msg_id == first_ids[0], "the redelivery republishes the first decision"


pytestmark = pytest.mark.integration
