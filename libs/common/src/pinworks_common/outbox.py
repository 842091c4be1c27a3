"""The transactional outbox relay: publishes rows written in the same transaction as the
database change they announce (a human resolution), then marks them sent.

A crash between publish and mark re-publishes with the same `Nats-Msg-Id`; JetStream drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.background import BackgroundTask
from pinworks_common.db.tables import outbox
from pinworks_common.ledger import Publication

log = logging.getLogger("pinworks.outbox")


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        publish: Callable[[Publication], Awaitable[Any]],
        *,
        interval_seconds: float = 0.25,
        batch_size: int = 100,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.interval = interval_seconds
        self.batch_size = batch_size
        self._relay_task = BackgroundTask("outbox-relay")

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were sent."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(
                select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id)
                .limit(self.batch_size).with_for_update(skip_locked=True)
            )).all()
            if not rows:
                return 0
            await asyncio.gather(*(
                self.publish(Publication(
                    subject=row.subject,
                    payload=bytes(row.payload),
                    msg_id=row.msg_id,
                    stream=row.headers.get("Pinworks-Stream", ""),
                    headers={k: v for k, v in row.headers.items() if k != "Pinworks-Stream"},
                ))
                for row in rows
            ))
            await conn.execute(
                update(outbox).where(outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=func.now())
            )
            return len(rows)

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except Exception as error:  # noqa: BLE001 - keep relaying after a transient failure
                log.warning("outbox relay failed: %r", error)
                sent = 0
            if sent < self.batch_size:
                await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._relay_task.start(self._run())

    async def stop(self) -> None:
        await self._relay_task.stop()
