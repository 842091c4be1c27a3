"""Alembic environment: runs migrations over asyncpg with the URL handed in by `migrate.upgrade`,
then applies the roles' grants (`pinworks_common.db.roles`) in the same transaction."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import apply_grants
from pinworks_common.db.tables import metadata

target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
        apply_grants(connection)  # every table owned by the migrations role, exactly roles.GRANTS


async def _run_online() -> None:
    engine = create_engine(context.config.attributes["database_url"], pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_run_online())
