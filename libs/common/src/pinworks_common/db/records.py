"""Batched, idempotent writes shared by the stages: one statement per table per batch.

Every insert is `ON CONFLICT DO NOTHING` on a natural key (ticket + stage + key), so a
redelivered message re-applies without double-counting cost or duplicating an audit row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import Outcome
from pinworks_common.db.tables import accountability, cost_ledger, decisions, outcomes, tickets
from pinworks_common.metrics import observe_costs, observe_decisions, observe_outcomes
from pinworks_common.stage import Publication
from pinworks_common.subjects import OUTCOMES_STREAM, outcome_subject

Row = Mapping[str, Any]


async def insert_ignoring_duplicates(
    conn: AsyncConnection, table: Table, rows: Sequence[Row], constraint: str
) -> None:
    if rows:
        await conn.execute(insert(table).on_conflict_do_nothing(constraint=constraint), list(rows))


async def insert_new(
    conn: AsyncConnection, table: Table, rows: Sequence[Row], constraint: str,
    key: Sequence[str],
) -> list[Row]:
    """Insert ignoring duplicates and return the rows this statement really inserted (a
    redelivery's rows are not among them), so metrics count each audit row once."""
    if not rows:
        return []
    statement = insert(table).on_conflict_do_nothing(constraint=constraint).returning(
        *(table.c[name] for name in key))
    inserted = {tuple(found) for found in await conn.execute(statement, list(rows))}
    return [row for row in rows if tuple(row[name] for name in key) in inserted]


async def record_decisions(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """Store decisions once; return the newly stored ones."""
    new = await insert_new(conn, decisions, rows, "decisions_once",
                           ("ticket_id", "stage", "decision_key"))
    counts: dict[str, int] = {}
    for row in new:
        counts[row["stage"]] = counts.get(row["stage"], 0) + 1
    observe_decisions(counts)
    return new


async def record_costs(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """Store ledger entries once; return the newly stored ones."""
    new = await insert_new(conn, cost_ledger, rows, "cost_ledger_once", ("ticket_id", "entry_key"))
    observe_costs([(row["business_unit"], row["component"], float(row["amount_usd"]))
                   for row in new])
    return new


async def record_accountability(conn: AsyncConnection, rows: Sequence[Row]) -> None:
    await insert_ignoring_duplicates(conn, accountability, rows, "accountability_once")


async def costs_by_ticket(conn: AsyncConnection, ticket_ids: Iterable[str]) -> dict[str, Decimal]:
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    result = await conn.execute(
        select(cost_ledger.c.ticket_id, func.sum(cost_ledger.c.amount_usd))
        .where(cost_ledger.c.ticket_id.in_(ids))
        .group_by(cost_ledger.c.ticket_id)
    )
    return {ticket_id: Decimal(total) for ticket_id, total in result.all()}


async def record_outcomes(
    conn: AsyncConnection, candidates: Sequence[tuple[str, Outcome]]
) -> list[Outcome]:
    """Store each (outcome_key, outcome) once; return what is stored, so a retry republishes
    the first decision rather than a recomputed one."""
    if not candidates:
        return []
    new = await insert_new(
        conn,
        outcomes,
        [
            {
                "ticket_id": outcome.ticket_id,
                "outcome_key": key,
                "status": outcome.status.value,
                "payload": outcome.model_dump(mode="json"),
            }
            for key, outcome in candidates
        ],
        "outcomes_once",
        ("ticket_id", "outcome_key"),
    )
    await _observe_new_outcomes(conn, [(row["ticket_id"], row["outcome_key"]) for row in new],
                                candidates)
    keys = [(outcome.ticket_id, key) for key, outcome in candidates]
    stored = await conn.execute(
        select(outcomes.c.ticket_id, outcomes.c.outcome_key, outcomes.c.payload).where(
            tuple_(outcomes.c.ticket_id, outcomes.c.outcome_key).in_(keys)
        )
    )
    by_key = {(row.ticket_id, row.outcome_key): row.payload for row in stored}
    return [Outcome.model_validate(by_key[key]) for key in keys]


async def _observe_new_outcomes(
    conn: AsyncConnection, new: Sequence[tuple[str, str]],
    candidates: Sequence[tuple[str, Outcome]],
) -> None:
    """Count the new outcomes, with the time since each ticket was accepted (a rejected
    submission never was, so it has no end-to-end latency)."""
    if not new:
        return
    by_key = {(outcome.ticket_id, key): outcome for key, outcome in candidates}
    received = dict((await conn.execute(
        select(tickets.c.ticket_id, tickets.c.received_at)
        .where(tickets.c.ticket_id.in_(sorted({ticket_id for ticket_id, _ in new})))
    )).all())
    rows = []
    for ticket_id, key in new:
        outcome = by_key[(ticket_id, key)]
        accepted = received.get(ticket_id)
        seconds = (outcome.decided_at - accepted).total_seconds() if accepted else None
        rows.append((outcome.status.value, outcome.business_unit, outcome.resolved_by, seconds))
    observe_outcomes(rows)


def outcome_publication(outcome: Outcome, key: str, headers: Mapping[str, str]) -> Publication:
    return Publication(
        subject=outcome_subject(outcome.status),
        payload=outcome.model_dump_json().encode(),
        msg_id=f"{outcome.ticket_id}:outcome:{key}",
        stream=OUTCOMES_STREAM,
        headers=dict(headers),
    )


async def stored_outputs(
    conn: AsyncConnection,
    stage: str,
    decision_key: str | Mapping[str, str],
    ticket_ids: Iterable[str],
) -> dict[str, dict[str, Any]]:
    """The decision outputs as first recorded: a redelivery acts on them, not on a recomputation.

    `decision_key` is one key for every ticket, or a key per ticket (one per automation attempt).
    """
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    keys = decision_key if isinstance(decision_key, Mapping) else dict.fromkeys(ids, decision_key)
    result = await conn.execute(
        select(decisions.c.ticket_id, decisions.c.output).where(
            decisions.c.stage == stage,
            tuple_(decisions.c.ticket_id, decisions.c.decision_key).in_(
                [(ticket_id, keys[ticket_id]) for ticket_id in ids]
            ),
        )
    )
    return {row.ticket_id: row.output for row in result}
