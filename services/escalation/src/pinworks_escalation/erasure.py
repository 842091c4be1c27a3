"""Erasing a ticket's or a customer's personal data, and the retention task that does it for
tickets past `ESCALATION_RETENTION_DAYS`.

The append-only audit (`decisions`, `accountability`, `outcomes`, `cost_ledger`,
`rejected_payloads`, `dead_letters`) never held personal data (the ledger redacts what it
writes), so erasure leaves it as it is and adds one `accountability` event per ticket saying
that, when and by whom, without the data. What it changes is where the raw text was kept for
the queue and for hand-ons:

- `tickets`: subject, body and metadata redacted (names in metadata become `[NAME]`), and
  `personal_data_erased_at` set;
- `decision_originals`, `outcome_originals`: deleted (the audit keeps their redacted copies);
- `escalations`: the queued envelope and the agent's reply redacted;
- `labelled_examples`: text redacted (written redacted; rows from before that are redacted here);
- `rejected_payloads`, `dead_letters`: left as they are: they are audit (append-only; no role
  may change them), written redacted by the ledger, and migration 0008 redacted the rows from
  before that;
- `outbox`: the ticket's published messages deleted;
- the submission in the `PINWORKS_TICKETS` stream, when it is still there, deleted by sequence.
  Hand-offs in `PINWORKS_WORK` and outcomes in `PINWORKS_OUTCOMES` age out of their streams
  (7 and 30 days), sooner than any retention setting allows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.background import BackgroundTask
from pinworks_common.db.records import record_accountability, unknown_agent
from pinworks_common.db.tables import (
    decision_originals,
    escalations,
    labelled_examples,
    outbox,
    outcome_originals,
    tickets,
)
from pinworks_common.personal_data import NAME_FIELDS, known_names, redact, redact_value
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.subjects import TICKETS_STREAM
from pinworks_escalation.queue.items import RESOLVED

log = logging.getLogger("pinworks.escalation.erasure")

ERASE_ACTION = "erase_personal_data"


@dataclass(frozen=True)
class Erased:
    """One ticket whose personal data was erased, and its submission's stream sequence."""

    ticket_id: str
    submission_seq: int


def erased_metadata(metadata: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Ticket metadata without personal data: the name fields as `[NAME]`, every other string
    redacted."""
    return {key: "[NAME]" if key in NAME_FIELDS and value else redact_value(value, known_names=names)
            for key, value in metadata.items()}


async def tickets_of_customer(conn: AsyncConnection, customer_id: str,
                              platform: str | None = None) -> list[str]:
    """The customer's tickets; with `platform`, only those that platform submitted (customer
    ids, like ticket ids, are each platform's own)."""
    query = select(tickets.c.ticket_id).where(tickets.c.customer_id == customer_id)
    if platform is not None:
        query = query.where(func.coalesce(tickets.c.platform, DEFAULT_PLATFORM) == platform)
    result = await conn.execute(query.order_by(tickets.c.received_at))
    return list(result.scalars())


async def expired_tickets(conn: AsyncConnection, now: datetime, retention_days: int,
                          limit: int = 500) -> list[str]:
    """Tickets received more than `retention_days` ago, not erased yet, and not waiting in the
    queue (a ticket an agent has still to answer keeps its text until it is resolved)."""
    waiting = exists().where(escalations.c.ticket_id == tickets.c.ticket_id,
                             escalations.c.status != RESOLVED)
    result = await conn.execute(
        select(tickets.c.ticket_id)
        .where(tickets.c.received_at < now - timedelta(days=retention_days),
               tickets.c.personal_data_erased_at.is_(None), ~waiting)
        .order_by(tickets.c.received_at).limit(limit))
    return list(result.scalars())


async def erase_tickets(conn: AsyncConnection, ticket_ids: Sequence[str], *, actor: str,
                        actor_type: str, scope: str, now: datetime) -> list[Erased]:
    """Erase the personal data of `ticket_ids` in the caller's transaction (see the module)."""
    rows = (await conn.execute(
        select(tickets.c.ticket_id, tickets.c.subject, tickets.c.body, tickets.c.metadata,
               tickets.c.submission_seq)
        .where(tickets.c.ticket_id.in_(list(ticket_ids))).with_for_update())).all()
    erased: list[Erased] = []
    for row in rows:
        names = known_names(row.metadata)
        await conn.execute(update(tickets).where(tickets.c.ticket_id == row.ticket_id).values(
            subject=redact(row.subject, known_names=names)[0] if row.subject else row.subject,
            body=redact(row.body, known_names=names)[0],
            metadata=erased_metadata(row.metadata or {}, names),
            personal_data_erased_at=now))
        await _erase_beside(conn, row.ticket_id, names)
        erased.append(Erased(row.ticket_id, row.submission_seq))
    await record_accountability(conn, [{
        "ticket_id": item.ticket_id, "event_key": f"personal-data:erase:{now.isoformat()}",
        "actor_type": actor_type, "actor": actor, "action": ERASE_ACTION, "version": None,
        "details": {"scope": scope, "erased_at": now.isoformat()},
    } for item in erased])
    return erased


class ErasureRefused(ValueError):
    """An erasure that is not done (nothing changed); the message says why."""


async def erase_for_agent(conn: AsyncConnection, ticket_ids: Sequence[str], *, agent: str,
                          scope: str, now: datetime) -> list[Erased]:
    """An operator's erasure (`pinworks erase`), recorded under `agent`, the agent who answers
    for it; refused before anything changes when no agent has that name (`ErasureRefused`)."""
    if (refusal := await unknown_agent(conn, agent, "the erasure")) is not None:
        raise ErasureRefused(refusal)
    return await erase_tickets(conn, ticket_ids, actor=agent, actor_type="operator",
                               scope=scope, now=now)


async def _erase_beside(conn: AsyncConnection, ticket_id: str, names: tuple[str, ...]) -> None:
    """Everything kept beside the ticket row: originals deleted, working copies redacted."""
    for table in (decision_originals, outcome_originals):
        await conn.execute(delete(table).where(table.c.ticket_id == ticket_id))
    await conn.execute(delete(outbox).where(
        outbox.c.msg_id.startswith(f"{ticket_id}:", autoescape=True),
        outbox.c.published_at.is_not(None)))
    escalation = (await conn.execute(
        select(escalations.c.context, escalations.c.reply)
        .where(escalations.c.ticket_id == ticket_id).with_for_update())).first()
    if escalation is not None:
        await conn.execute(update(escalations).where(escalations.c.ticket_id == ticket_id).values(
            context=redact_value(escalation.context, known_names=names),
            reply=redact(escalation.reply, known_names=names)[0] if escalation.reply else None))
    for table, column in ((labelled_examples, "text"),):
        found = (await conn.execute(select(table.c.id, table.c[column])
                                    .where(table.c.ticket_id == ticket_id))).all()
        for item_id, text in found:
            redacted = redact(text, known_names=names)[0]
            if redacted != text:
                await conn.execute(update(table).where(table.c.id == item_id)
                                   .values({column: redacted}))


async def delete_submissions(js: Any, stream: str, erased: Sequence[Erased]) -> int:
    """Delete the erased tickets' submissions from the tickets stream; how many were there."""
    from nats.js.errors import NotFoundError

    deleted = 0
    for item in erased:
        try:
            deleted += bool(await js.delete_msg(stream, item.submission_seq))
        except NotFoundError:
            continue  # aged out of the stream, or deleted before
    return deleted



class RetentionTask:
    """Every `interval_seconds`, erases the personal data of tickets past the retention period
    (`expired_tickets`), as the `retention` component, in batches."""

    def __init__(self, engine: AsyncEngine, *, retention_days: int, interval_seconds: float,
                 jetstream: Callable[[], Any] | None = None) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.interval = interval_seconds
        self.jetstream = jetstream
        self._task = BackgroundTask("personal-data-retention")

    async def run_once(self, now: datetime | None = None) -> list[Erased]:
        now = now or datetime.now(UTC)
        erased: list[Erased] = []
        while True:
            async with self.engine.begin() as conn:
                batch = await erase_tickets(
                    conn, await expired_tickets(conn, now, self.retention_days), actor="retention",
                    actor_type="component", scope=f"retention: {self.retention_days} days", now=now)
            erased += batch
            if self.jetstream is not None and batch:
                await delete_submissions(self.jetstream(), TICKETS_STREAM, batch)
            if not batch:
                return erased

    async def _run(self) -> None:
        while True:
            try:
                erased = await self.run_once()
                if erased:
                    log.info("retention: erased the personal data of %d ticket(s) older than %d days",
                             len(erased), self.retention_days)
            except Exception as error:  # noqa: BLE001 - try again next round
                log.warning("retention failed: %r", error)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
