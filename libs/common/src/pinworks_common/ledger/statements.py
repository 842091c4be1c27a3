"""The ledger's SQL, one text per table and shape whatever the batch's size.

A batch's rows travel as one array per column (`unnest`), and the keys a read looks for as
arrays too (`= ANY`, or joined from `unnest`), so a statement's text never depends on how many
rows or keys it carries. Each pooled connection therefore parses and plans it once and later
batches only bind and execute it: one round trip per statement, where a multi-row VALUES list
or an IN list of a new length was parsed and planned again (and prepared in its own round
trip) whenever the batch's size changed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from pinworks_common.db.tables import metadata
from pinworks_common.ledger import jsonb
from pinworks_common.ledger.records import Row

_ARRAY_OF: tuple[tuple[type, str], ...] = (
    (JSONB, "text"), (BigInteger, "int8"), (Integer, "int4"), (Float, "float8"),
    (Numeric, "numeric"), (Date, "date"), (LargeBinary, "bytea"), (Text, "text"),
)
"""The Postgres element type a column's values travel as (JSONB as its JSON text)."""


def _element_type(table: str, column: str) -> str:
    kind = metadata.tables[table].c[column].type
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    for python_type, element in _ARRAY_OF:
        if isinstance(kind, python_type):
            return element
    raise TypeError(f"{table}.{column}: no array form for {kind!r}")


def _is_json(table: str, column: str) -> bool:
    return isinstance(metadata.tables[table].c[column].type, JSONB)


@lru_cache(maxsize=64)
def json_columns(table: str) -> tuple[str, ...]:
    """The table's JSON columns."""
    return tuple(column.name for column in metadata.tables[table].columns
                 if isinstance(column.type, JSONB))


def _names(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for name in columns)


def _unnested(table: str, columns: Sequence[str], first: int = 1) -> str:
    """`unnest($1::t1[], $2::t2[], ...)`, one array parameter per column from `$first` on."""
    arrays = ", ".join(f"${first + n}::{_element_type(table, name)}[]"
                       for n, name in enumerate(columns))
    return f"unnest({arrays})"


@lru_cache(maxsize=256)
def insert_rows(table: str, columns: tuple[str, ...], first: int = 1) -> str:
    """`INSERT ... SELECT` of the rows in `columns`' arrays (parameters from `$first` on),
    without a conflict clause."""
    values = ", ".join(f'u."{name}"::jsonb' if _is_json(table, name) else f'u."{name}"'
                       for name in columns)
    return (f'INSERT INTO "{table}" ({_names(columns)}) SELECT {values} '
            f"FROM {_unnested(table, columns, first)} AS u({_names(columns)})")


Shape = tuple[str, tuple[str, ...], tuple[str, ...], int | None]
"""A write of a combined insert: table, the columns its rows set, its key, and the earlier
write whose inserted keys it is limited to (or None)."""


@lru_cache(maxsize=256)
def insert_together(shapes: tuple[Shape, ...]) -> str:
    """One statement inserting each write's rows whose key is new (data-modifying CTEs, in
    order), returning `step` (the write's index) and `key` (a JSON array) per inserted row."""
    ctes, selects, first = [], [], 1
    for step, (table, columns, key, after) in enumerate(shapes):
        body = insert_rows(table, columns, first)
        if after is not None:
            body += f" WHERE ({_names(key, 'u.')}) IN (SELECT {_names(key)} FROM s{after})"
        ctes.append(f"s{step} AS ({body} ON CONFLICT ({_names(key)}) DO NOTHING "
                    f"RETURNING {_names(key)})")
        selects.append(f"SELECT {step} AS step, json_build_array({_names(key)}) AS key "
                       f"FROM s{step}")
        first += len(columns)
    return f"WITH {', '.join(ctes)} {' UNION ALL '.join(selects)}"


@lru_cache(maxsize=256)
def insert_once(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """Insert rows whose key is new; return the key of each row this statement inserted."""
    return (f"{insert_rows(table, columns)} ON CONFLICT ({_names(key)}) DO NOTHING "
            f"RETURNING {_names(key)}")


@lru_cache(maxsize=256)
def first_stored(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """Insert rows whose key is new; return every row's stored version (the no-op update makes
    a conflicting row come back as stored)."""
    return (f'{insert_rows(table, columns)} ON CONFLICT ({_names(key)}) DO UPDATE SET '
            f'"{key[0]}" = EXCLUDED."{key[0]}" RETURNING *')


@lru_cache(maxsize=256)
def supersede(table: str, columns: tuple[str, ...], key: tuple[str, ...], version: str,
              keep: frozenset[str], merge: frozenset[str], clear: frozenset[str]) -> str:
    """Insert new keys; replace a stored row only with a higher `version` (see
    `Store.supersede`)."""
    fixed = {*key, *keep, *merge}
    assignments = {name: f'EXCLUDED."{name}"' for name in columns if name not in fixed}
    assignments.update({name: f'"{table}"."{name}" || EXCLUDED."{name}"' for name in merge})
    assignments.update(dict.fromkeys(clear, "NULL"))
    updates = ", ".join(f'"{name}" = {value}' for name, value in sorted(assignments.items()))
    return (f"{insert_rows(table, columns)} ON CONFLICT ({_names(key)}) DO UPDATE SET "
            f'{updates} WHERE "{table}"."{version}" < EXCLUDED."{version}"')


def arrays(table: str, columns: Sequence[str], rows: Sequence[Row]) -> tuple[list[Any], ...]:
    """The rows as one list per column, JSON columns as their JSON text (None included, as
    SQLAlchemy's JSONB stores it; a value the ledger encoded already is sent as it is,
    `jsonb.JsonText`)."""
    return tuple([jsonb.text(row[name]) for row in rows] if _is_json(table, name)
                 else [row[name] for row in rows] for name in columns)


def by_columns(rows: Sequence[Row]) -> dict[tuple[str, ...], list[Row]]:
    """Rows grouped by the columns they set (a ledger call's rows all set the same ones)."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


@lru_cache(maxsize=256)
def rows_where(table: str, column: str, selected: str = "*") -> str:
    """`selected` of the rows whose `column` is one of the array `$1`."""
    return (f'SELECT {selected} FROM "{table}" '
            f'WHERE "{column}" = ANY($1::{_element_type(table, column)}[])')


COST_TOTALS = ('SELECT ticket_id, sum(amount_usd) AS total FROM cost_ledger '
               'WHERE ticket_id = ANY($1::text[]) GROUP BY ticket_id')

STORED_DECISIONS = (
    "SELECT d.ticket_id, d.stage, d.decision_key, coalesce(o.output, d.output) AS output "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS r(ticket_id, stage, decision_key) "
    "JOIN decisions d ON d.ticket_id = r.ticket_id AND d.stage = r.stage "
    "AND d.decision_key = r.decision_key "
    "LEFT JOIN decision_originals o ON o.ticket_id = d.ticket_id AND o.stage = d.stage "
    "AND o.decision_key = d.decision_key")

STORED_OUTCOMES = (
    "SELECT d.ticket_id, d.outcome_key, d.msg_nonce, coalesce(o.payload, d.payload) AS payload "
    "FROM unnest($1::text[], $2::text[]) AS r(ticket_id, outcome_key) "
    "JOIN outcomes d ON d.ticket_id = r.ticket_id AND d.outcome_key = r.outcome_key "
    "LEFT JOIN outcome_originals o ON o.ticket_id = d.ticket_id "
    "AND o.outcome_key = d.outcome_key")


def columns_of(keys: Collection[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """Composite keys as one list per position."""
    return tuple([key[n] for key in keys] for n in range(width))
