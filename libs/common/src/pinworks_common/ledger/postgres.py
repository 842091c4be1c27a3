"""The ledger's store in Postgres: one statement per table per call, inside the batch's
transaction (`PostgresBooks.transaction`) or a short read outside it (`reading`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.db.tables import (
    cost_ledger,
    decision_originals,
    decisions,
    metadata,
    outcome_originals,
    outcomes,
    tickets,
)
from pinworks_common.ledger.book import TABLE_KEYS, Ledger, key_of
from pinworks_common.ledger.records import DecisionRef, Output, Row, StoredOutcome


class PostgresStore:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        target, key = metadata.tables[table], TABLE_KEYS[table]
        statement = insert(target).on_conflict_do_nothing(index_elements=list(key)).returning(
            *(target.c[name] for name in key))
        inserted = {tuple(found) for found in await self.connection.execute(statement, list(rows))}
        return [row for row in rows if key_of(table, row) in inserted]

    async def first_stored(self, table: str, rows: Sequence[Row]) -> list[Row]:
        target, key = metadata.tables[table], TABLE_KEYS[table]
        statement = insert(target)
        upsert = statement.on_conflict_do_update(
            index_elements=list(key), set_={key[0]: statement.excluded[key[0]]},
        ).returning(*target.c, sort_by_parameter_order=True)
        return [dict(row._mapping) for row in await self.connection.execute(upsert, list(rows))]

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str], merge: Collection[str],
                        clear: Collection[str]) -> None:
        target, key = metadata.tables[table], TABLE_KEYS[table]
        statement = insert(target)
        excluded = statement.excluded
        fixed = {*key, *keep, *merge}
        values: dict[str, Any] = {name: excluded[name] for name in rows[0] if name not in fixed}
        values.update({name: target.c[name].op("||")(excluded[name]) for name in merge})
        values.update(dict.fromkeys(clear))
        await self.connection.execute(statement.on_conflict_do_update(
            index_elements=list(key), set_=values,
            where=target.c[version] < excluded[version]), list(rows))

    async def existing(self, table: str, column: str, values: Collection[Any]) -> set[Any]:
        target = metadata.tables[table]
        found = await self.connection.execute(
            select(target.c[column]).where(target.c[column].in_(sorted(values))))
        return set(found.scalars())

    async def stored_rows(self, table: str, column: str, values: Collection[Any]
                          ) -> list[Row]:
        target = metadata.tables[table]
        found = await self.connection.execute(
            select(target).where(target.c[column].in_(sorted(values))))
        return [dict(row._mapping) for row in found]

    async def stored_decisions(self, refs: Collection[DecisionRef]) -> dict[DecisionRef, Output]:
        original = decision_originals.c
        result = await self.connection.execute(
            select(decisions.c.ticket_id, decisions.c.stage, decisions.c.decision_key,
                   func.coalesce(original.output, decisions.c.output).label("output"))
            .outerjoin(decision_originals, (original.ticket_id == decisions.c.ticket_id)
                       & (original.stage == decisions.c.stage)
                       & (original.decision_key == decisions.c.decision_key))
            .where(tuple_(decisions.c.ticket_id, decisions.c.stage, decisions.c.decision_key)
                   .in_(sorted(refs))))
        return {DecisionRef(row.ticket_id, row.stage, row.decision_key): row.output
                for row in result}

    async def stored_outcomes(self, keys: Collection[tuple[str, str]]
                              ) -> dict[tuple[str, str], StoredOutcome]:
        original = outcome_originals.c
        result = await self.connection.execute(
            select(outcomes.c.ticket_id, outcomes.c.outcome_key, outcomes.c.msg_nonce,
                   func.coalesce(original.payload, outcomes.c.payload).label("payload"))
            .outerjoin(outcome_originals, (original.ticket_id == outcomes.c.ticket_id)
                       & (original.outcome_key == outcomes.c.outcome_key))
            .where(tuple_(outcomes.c.ticket_id, outcomes.c.outcome_key).in_(sorted(keys))))
        return {(row.ticket_id, row.outcome_key): StoredOutcome(row.payload, row.msg_nonce)
                for row in result}

    async def cost_totals(self, ticket_ids: Collection[str]) -> dict[str, Decimal]:
        result = await self.connection.execute(
            select(cost_ledger.c.ticket_id, func.sum(cost_ledger.c.amount_usd))
            .where(cost_ledger.c.ticket_id.in_(sorted(ticket_ids)))
            .group_by(cost_ledger.c.ticket_id))
        return {ticket_id: Decimal(total) for ticket_id, total in result.all()}

    async def received_at(self, ticket_ids: Collection[str]) -> dict[str, datetime]:
        result = await self.connection.execute(
            select(tickets.c.ticket_id, tickets.c.received_at)
            .where(tickets.c.ticket_id.in_(sorted(ticket_ids))))
        return {row.ticket_id: row.received_at for row in result}


class PostgresBooks:
    """Ledgers over the service's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Ledger]:
        async with self.engine.begin() as connection:
            yield Ledger(PostgresStore(connection))

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Ledger]:
        async with self.engine.connect() as connection:
            yield Ledger(PostgresStore(connection))


def ledger_on(connection: AsyncConnection) -> Ledger:
    """A ledger inside a transaction the caller holds."""
    return Ledger(PostgresStore(connection))


def connection_of(ledger: Ledger) -> AsyncConnection:
    """The transaction behind a Postgres ledger, for a stage's own Postgres-only statements."""
    if not isinstance(ledger.store, PostgresStore):
        raise TypeError(f"{type(ledger.store).__name__} keeps no Postgres connection")
    return ledger.store.connection
