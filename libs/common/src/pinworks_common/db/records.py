"""Row-shaped entry points to the ledger for code that writes outside a stage (the human
queue): the same idempotent records and metrics as `pinworks_common.ledger`, in the caller's
transaction. New code builds `ledger.Entries` instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import agents
from pinworks_common.ledger.postgres import ledger_on
from pinworks_common.ledger.records import (
    AccountabilityEntry,
    CostEntry,
    Entries,
    OutcomeEntry,
    Publication,
)
from pinworks_contracts.messages import Outcome

Row = Mapping[str, Any]


async def record_costs(conn: AsyncConnection, rows: Sequence[Row]) -> list[CostEntry]:
    """Store ledger entries once; return the newly stored ones."""
    entries = Entries(costs=[
        CostEntry(ticket_id=row["ticket_id"], business_unit=row["business_unit"],
                  component=row["component"], key=row["entry_key"],
                  amount_usd=row["amount_usd"])
        for row in rows])
    return (await ledger_on(conn).record(entries)).new_costs


async def record_accountability(conn: AsyncConnection, rows: Sequence[Row]) -> None:
    await ledger_on(conn).record(Entries(accountability=[
        AccountabilityEntry(ticket_id=row["ticket_id"], key=row["event_key"], actor=row["actor"],
                            action=row["action"], version=row["version"],
                            details=row["details"], actor_type=row["actor_type"])
        for row in rows]))


async def unknown_agent(conn: AsyncConnection, name: str, answers_for: str) -> str | None:
    """Why `name` cannot be recorded as the person who answers for `answers_for` (an operator's
    `--by`), or None when it is an agent's (`agents`, `pinworks agent list`): the one identity
    people are recorded under in the audit (queue actions, verdicts, operators' actions), so a
    typo or an invented name never becomes the accountable name."""
    if (await conn.execute(select(agents.c.name).where(agents.c.name == name))).first():
        return None
    return (f"no agent named {name!r}: --by names the agent who answers for {answers_for} "
            "(`pinworks agent list`; `pinworks agent add` first)")


async def costs_by_ticket(conn: AsyncConnection, ticket_ids: Iterable[str]) -> dict[str, Decimal]:
    return await ledger_on(conn).costs(ticket_ids)


async def record_outcomes(
    conn: AsyncConnection, candidates: Sequence[tuple[str, Outcome]]
) -> list[tuple[Outcome, Publication]]:
    """Store each (outcome_key, outcome) once; return what is stored and its publication (under
    the stored message id), so a retry republishes the first decision rather than a recomputed
    one."""
    entries = Entries(outcomes=[OutcomeEntry(key, outcome) for key, outcome in candidates])
    recorded = await ledger_on(conn).record(entries)
    return list(zip(recorded.outcomes, recorded.outcome_publications, strict=True))
