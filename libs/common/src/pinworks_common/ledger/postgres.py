"""The ledger's store in Postgres: one statement per table per call, inside the batch's
transaction (`PostgresBooks.transaction`) or a short read outside it (`reading`), each of a
text that does not change with the batch's size (`statements`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.ledger import statements
from pinworks_common.ledger.book import TABLE_KEYS, Ledger, check_writes, insert_apart, key_of
from pinworks_common.ledger.records import DecisionRef, Output, Row, StoredOutcome, Write


class PostgresStore:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def _write(self, statement_of: Callable[[tuple[str, ...]], str], table: str,
                     rows: Sequence[Row]) -> list[Row]:
        """Run the statement `statement_of` makes for the rows' columns (one per batch: a
        call's rows set the same columns) with the rows as arrays; return what it returned."""
        returned: list[Row] = []
        for columns, group in statements.by_columns(rows).items():
            result = await self.connection.exec_driver_sql(
                statement_of(columns), statements.arrays(table, columns, group))
            returned += [dict(row._mapping) for row in result] if result.returns_rows else []
        return returned

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        key = TABLE_KEYS[table]
        found = await self._write(lambda columns: statements.insert_once(table, columns, key),
                                  table, rows)
        inserted = {tuple(row[name] for name in key) for row in found}
        return [row for row in rows if key_of(table, row) in inserted]

    async def insert_together(self, writes: Sequence[Write]) -> dict[str, list[Row]]:
        check_writes(writes)
        inserted: dict[str, list[Row]] = {write.table: [] for write in writes}
        shapes: list[statements.Shape] = []
        steps: dict[str, int] = {}
        arrays: list[list[Any]] = []
        for write in writes:
            groups = statements.by_columns(write.rows)
            if not groups or (write.after is not None and write.after not in steps):
                continue
            if len(groups) > 1:  # rows setting different columns: each write on its own
                return await insert_apart(self, writes)
            [columns] = groups
            steps[write.table] = len(shapes)
            shapes.append((write.table, columns, TABLE_KEYS[write.table],
                           None if write.after is None else steps[write.after]))
            arrays += statements.arrays(write.table, columns, write.rows)
        if not shapes:
            return inserted
        found: dict[int, set[tuple[Any, ...]]] = {step: set() for step in steps.values()}
        for row in await self._rows(statements.insert_together(tuple(shapes)), *arrays):
            found[row.step].add(tuple(row.key))
        for write in writes:
            if write.table in steps:
                inserted[write.table] = [row for row in write.rows
                                         if key_of(write.table, row) in found[steps[write.table]]]
        return inserted

    async def first_stored(self, table: str, rows: Sequence[Row]) -> list[Row]:
        key = TABLE_KEYS[table]
        return await self._write(lambda columns: statements.first_stored(table, columns, key),
                                 table, rows)

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str], merge: Collection[str],
                        clear: Collection[str]) -> None:
        key = TABLE_KEYS[table]
        await self._write(lambda columns: statements.supersede(
            table, columns, key, version, frozenset(keep), frozenset(merge), frozenset(clear)),
            table, rows)

    async def _rows(self, statement: str, *arrays: Sequence[Any]) -> list[Any]:
        return list(await self.connection.exec_driver_sql(statement, arrays))

    async def existing(self, table: str, column: str, values: Collection[Any]) -> set[Any]:
        found = await self._rows(statements.rows_where(table, column, f'DISTINCT "{column}"'),
                                 list(values))
        return {row[0] for row in found}

    async def stored_rows(self, table: str, column: str, values: Collection[Any]
                          ) -> list[Row]:
        found = await self._rows(statements.rows_where(table, column), list(values))
        return [dict(row._mapping) for row in found]

    async def stored_decisions(self, refs: Collection[DecisionRef]) -> dict[DecisionRef, Output]:
        found = await self._rows(statements.STORED_DECISIONS, *statements.columns_of(refs, 3))
        return {DecisionRef(row.ticket_id, row.stage, row.decision_key): row.output
                for row in found}

    async def stored_outcomes(self, keys: Collection[tuple[str, str]]
                              ) -> dict[tuple[str, str], StoredOutcome]:
        found = await self._rows(statements.STORED_OUTCOMES, *statements.columns_of(keys, 2))
        return {(row.ticket_id, row.outcome_key): StoredOutcome(row.payload, row.msg_nonce)
                for row in found}

    async def cost_totals(self, ticket_ids: Collection[str]) -> dict[str, Decimal]:
        found = await self._rows(statements.COST_TOTALS, list(ticket_ids))
        return {row.ticket_id: Decimal(row.total) for row in found}

    async def received_at(self, ticket_ids: Collection[str]) -> dict[str, datetime]:
        found = await self._rows(statements.rows_where("tickets", "ticket_id",
                                                       "ticket_id, received_at"),
                                 list(ticket_ids))
        return {row.ticket_id: row.received_at for row in found}


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
