"""The console's agents in Postgres: name, password hash and the business units they serve."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import agents, console_sessions
from pinworks_escalation.queue.items import QueueError

AGENT_NAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"


@dataclass(frozen=True)
class Agent:
    name: str
    password_hash: str
    business_units: tuple[str, ...]


def agent_units(name: str, business_units: Sequence[str]) -> list[str]:
    """The agent's business units, sorted and without duplicates, or why they are refused."""
    if not re.fullmatch(AGENT_NAME_PATTERN, name):
        raise QueueError("an agent name is 1-64 letters, digits or '._@-'")
    units = sorted({unit.strip() for unit in business_units if unit.strip()})
    if not units:
        raise QueueError("an agent needs at least one business unit")
    if any(len(unit) > 64 for unit in units):
        raise QueueError("a business unit is at most 64 characters")
    return units


async def save_agent(
    conn: AsyncConnection, name: str, password_hash: str, business_units: Sequence[str]
) -> Agent:
    """Create an agent, or replace an existing agent's password and business units; a new
    password ends every session the agent has (console and CLI)."""
    units = agent_units(name, business_units)
    before = (await conn.execute(select(agents.c.password_hash).where(agents.c.name == name)
                                 .with_for_update())).scalar_one_or_none()
    if before is not None and before != password_hash:
        await conn.execute(update(console_sessions).where(
            console_sessions.c.agent == name, console_sessions.c.revoked_at.is_(None))
            .values(revoked_at=func.now()))
    await conn.execute(
        insert(agents).values(name=name, password_hash=password_hash, business_units=units)
        .on_conflict_do_update(index_elements=["name"], set_={
            "password_hash": password_hash, "business_units": units, "updated_at": func.now()})
    )
    return Agent(name, password_hash, tuple(units))


async def get_agent(conn: AsyncConnection, name: str) -> Agent | None:
    row = (await conn.execute(select(agents).where(agents.c.name == name))).first()
    return Agent(row.name, row.password_hash, tuple(row.business_units)) if row else None


async def list_agents(
    conn: AsyncConnection, business_units: Sequence[str] | None = None
) -> list[Agent]:
    """Agents by name; with `business_units`, those who serve at least one of them."""
    query = select(agents).order_by(agents.c.name)
    if business_units is not None:
        query = query.where(agents.c.business_units.overlap(list(business_units)))
    return [Agent(r.name, r.password_hash, tuple(r.business_units))
            for r in await conn.execute(query)]
