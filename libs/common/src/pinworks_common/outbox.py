"""The transactional outbox relay: publishes rows written in the same transaction as the
database change they announce (a human resolution), then marks them sent.

A crash between publish and mark re-publishes with the same `Nats-Msg-Id`; JetStream drops it.

The writer `announce`s its row in its transaction (a Postgres NOTIFY, delivered when it
commits); each relay LISTENs on its own connection and relays at once when told, so an idle
relay does not poll Postgres several times a second. It still looks every `interval_seconds`
(a row a replica wrote just before it died, a notification lost with its connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.background import BackgroundTask
from pinworks_common.db.tables import outbox
from pinworks_common.ledger import Publication

log = logging.getLogger("pinworks.outbox")

CHANNEL = "pinworks_outbox"
"""The Postgres notification channel an outbox write is announced on."""


async def announce(conn: AsyncConnection) -> None:
    """Tell every relay to look once this transaction commits (nothing if it rolls back)."""
    await conn.execute(text(f"NOTIFY {CHANNEL}"))


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        publish: Callable[[Publication], Awaitable[Any]],
        *,
        interval_seconds: float = 5.0,
        batch_size: int = 100,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.interval = interval_seconds
        self.batch_size = batch_size
        self._relay_task = BackgroundTask("outbox-relay")
        self._wake = asyncio.Event()
        self._listening: AsyncConnection | None = None
        self._listener: Any = None

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
            await self._listen()
            self._wake.clear()  # a notification from here on wakes the wait below
            try:
                sent = await self.relay_once()
            except Exception as error:  # noqa: BLE001 - keep relaying after a transient failure
                log.warning("outbox relay failed: %r", error)
                sent = 0
            if sent < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, again after it was lost (until then, and when
        Postgres cannot be reached, the relay looks every `interval`)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._unlisten()
        try:
            conn = await self.engine.connect()
            try:
                listener: Any = (await conn.get_raw_connection()).driver_connection
                await listener.add_listener(CHANNEL, self._notified)
                listener.add_termination_listener(self._notified)
            except BaseException:
                await conn.close()
                raise
        except Exception as error:  # noqa: BLE001 - polling covers it until the next try
            log.warning("outbox relay cannot listen for new rows (%r); looking every %gs",
                        error, self.interval)
            return
        self._listening, self._listener = conn, listener

    async def _unlisten(self) -> None:
        conn, listener = self._listening, self._listener
        self._listening = self._listener = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not listener.is_closed():
                await listener.remove_listener(CHANNEL, self._notified)
                listener.remove_termination_listener(self._notified)
        with contextlib.suppress(Exception):
            await conn.close()

    async def start(self) -> None:
        self._relay_task.start(self._run())

    async def stop(self) -> None:
        await self._relay_task.stop()
        await self._unlisten()
