"""The ledger's cost in Postgres does not grow with the batch: one statement per table per
batch, each of a text that does not depend on how many rows it carries (so every connection
prepares it once and then only binds), and no read of what the batch just wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.ledger import records
from pinworks_common.ledger.postgres import PostgresBooks
from pinworks_contracts.messages import Outcome, utcnow
from pinworks_contracts.subjects import OutcomeStatus
from tests.conftest import Database

pytestmark = pytest.mark.integration


@dataclass
class Traffic:
    """What reached Postgres: SQL statements, and the statements it had to parse and plan."""

    statements: list[str] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()
        self.prepared.clear()


@pytest_asyncio.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """One pooled connection, so a later batch finds what an earlier one prepared."""
    engine = create_engine(database.service_url("verifier"), pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture
def traffic(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Traffic]:
    seen = Traffic()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(statement)

    prepare = asyncpg.Connection.prepare

    async def counting_prepare(self: asyncpg.Connection, query: str, **kwargs: Any) -> Any:
        seen.prepared.append(query)
        return await prepare(self, query, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "prepare", counting_prepare)
    event.listen(engine.sync_engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", before)


_LETTERS_FOR_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def batch(size: int, *, personal: bool = False) -> records.Entries:
    """A verifier-like batch: per ticket a decision, a charge, an event and an outcome."""
    entries = records.Entries()
    for _ in range(size):
        # letters only: a hex id's digits can read as a phone number, whose redaction adds a write
        ticket_id = f"S-{uuid.uuid4().hex[:12].translate(_LETTERS_FOR_DIGITS)}"
        answer = "Call me on 07700 900123" if personal else "Your card is on its way."
        entries.decisions.append(records.Decision(
            ticket_id, "statements", "verify", "test", "1", inputs={"n": 1},
            output={"answer": answer}, reason="ok", cost_usd=Decimal("0.001"), trace_id="t"))
        entries.costs.append(records.CostEntry(ticket_id, "retail", "test", "verify",
                                               Decimal("0.001")))
        entries.accountability.append(records.AccountabilityEntry(
            ticket_id, "verify", "test", "verified", "1", {"checks": 3}))
        entries.outcomes.append(records.OutcomeEntry("automation", Outcome(
            ticket_id=ticket_id, status=OutcomeStatus.RESOLVED, business_unit="retail",
            answer=answer, cost_usd=Decimal("0.001"), resolved_by="automation",
            decided_at=utcnow())))
    return entries


async def record(engine: AsyncEngine, entries: records.Entries) -> records.Recorded:
    async with PostgresBooks(engine).transaction() as ledger:
        return await ledger.record(entries)


@pytest.mark.parametrize("personal", [False, True])
async def test_a_batch_costs_the_same_statements_whatever_its_size(
        engine: AsyncEngine, traffic: Traffic, personal: bool) -> None:
    await record(engine, batch(1, personal=personal))  # the connection prepares its statements
    texts, prepared = {}, {}
    for size in (1, 10, 100):
        traffic.clear()
        recorded = await record(engine, batch(size, personal=personal))
        assert len(recorded.outcomes) == size
        texts[size], prepared[size] = list(traffic.statements), len(traffic.prepared)
    print(f"statements by batch size (personal={personal}):",
          {size: len(found) for size, found in texts.items()}, "prepared:", prepared)
    assert texts[1] == texts[10] == texts[100]  # so a connection prepares each once
    # every table's rows (originals too) in one; the tickets' received_at (outcome latency)
    assert len(texts[100]) == 2


async def test_a_redelivered_batch_reads_back_only_what_it_did_not_store(
        engine: AsyncEngine, traffic: Traffic) -> None:
    entries = batch(20)
    await record(engine, entries)
    traffic.clear()
    again = await record(engine, entries)
    assert again.new_decisions == [] and again.new_costs == []
    assert [o.ticket_id for o in again.outcomes] == [e.outcome.ticket_id for e in entries.outcomes]
    # the write, the stored outcomes read back (the decisions are not: no hand-off needs them)
    assert len(traffic.statements) == 2
