"""Publishing tickets as a support platform does, and waiting for what comes back.

`submit` publishes one ticket and waits for its outcome or its rejection; `replay` publishes many
and collects their outcomes. Both subscribe to the outcomes before publishing, so no outcome can
slip past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

from pinworks_common.commands.platform import (
    connect_nats,
    database_url,
    nats_url,
    platform_of_client,
    submission_subject_of_client,
)
from pinworks_common.nats_client import watch_platform_outcomes

if TYPE_CHECKING:
    from rich.progress import Progress

    from pinworks_contracts.messages import Outcome

REJECTION_POLL_SECONDS = 0.2


def submission_msg_id(ticket_id: str, payload: bytes) -> str:
    """Same payload twice is one message; a corrected payload for the same id is not dropped;
    another platform's submission of the same id and payload is not dropped either (JetStream
    deduplicates across the whole stream, so the id names pinworks' id of the ticket, with its
    platform)."""
    from pinworks_contracts.messages import pinworks_ticket_id

    internal = pinworks_ticket_id(platform_of_client(), ticket_id)
    return f"{internal}:submitted:{hashlib.sha256(payload).hexdigest()[:16]}"


async def publish_and_collect(
    payloads: list[tuple[str, bytes]], wait_seconds: float, progress: Progress | None = None
) -> dict[str, Outcome]:
    """Publish every (ticket id, payload) and collect the first outcome of each, for at most
    ``wait_seconds``."""
    from pinworks_contracts.messages import Outcome
    from pinworks_contracts.subjects import TICKETS_STREAM

    subject = submission_subject_of_client()
    nc = await connect_nats(nats_url())
    js = nc.jetstream()
    wanted = {ticket_id for ticket_id, _ in payloads}
    outcomes: dict[str, Outcome] = {}
    done = asyncio.Event()
    task = progress.add_task("outcomes", total=len(wanted)) if progress else None

    async def on_outcome(msg: Any) -> None:
        try:
            outcome = Outcome.model_validate_json(msg.data)
        except ValueError:
            return
        if outcome.ticket_id in wanted and outcome.ticket_id not in outcomes:
            outcomes[outcome.ticket_id] = outcome
            if progress is not None and task is not None:
                progress.advance(task)
            if len(outcomes) == len(wanted):
                done.set()

    try:
        subscription = await watch_platform_outcomes(nc, platform_of_client(), on_outcome)
        try:
            for ticket_id, payload in payloads:
                await js.publish(subject, payload, stream=TICKETS_STREAM,
                                 headers={"Nats-Msg-Id": submission_msg_id(ticket_id, payload)})
            if wait_seconds > 0 and wanted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=wait_seconds)
        finally:
            await subscription.unsubscribe()
    finally:
        await nc.close()
    return outcomes


async def submit_one(ticket_id: str, payload: bytes, wait_seconds: float) -> dict[str, Any]:
    """Publish one ticket and wait for whichever comes first: its outcome, or its rejection.

    A ticket whose id cannot be read gets no outcome (there is no id to publish it under); the
    classifier records it in `rejected_payloads` under the stream sequence JetStream gave the
    publish, so that row is watched too, and its reasons are reported as soon as it is written.
    """
    from pinworks_contracts.messages import Outcome
    from pinworks_contracts.subjects import TICKETS_STREAM

    subject = submission_subject_of_client()
    nc = await connect_nats(nats_url())
    db_url = database_url()
    found: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def on_outcome(msg: Any) -> None:
        with contextlib.suppress(ValueError):
            outcome = Outcome.model_validate_json(msg.data)
            if outcome.ticket_id == ticket_id and not found.done():
                found.set_result({"outcome": outcome})

    try:
        js = nc.jetstream()
        subscription = await watch_platform_outcomes(nc, platform_of_client(), on_outcome)
        try:
            ack = await js.publish(subject, payload, stream=TICKETS_STREAM,
                                   headers={"Nats-Msg-Id": submission_msg_id(ticket_id, payload)})
            if ack.duplicate:
                return {"duplicate": ack.seq}
            if wait_seconds <= 0:
                return {"submitted": ack.seq}
            return await _await_outcome_or_rejection(found, db_url, ack.seq, wait_seconds)
        finally:
            await subscription.unsubscribe()
    finally:
        await nc.close()


async def _await_outcome_or_rejection(found: asyncio.Future[dict[str, Any]], db_url: str,
                                      seq: int, wait_seconds: float) -> dict[str, Any]:
    """What `found` gets first (the outcome, or the rejection a watcher finds), else a timeout."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_rejection(db_url, seq, found, stop))
    try:
        return {**await asyncio.wait_for(asyncio.shield(found), wait_seconds), "seq": seq}
    except TimeoutError:
        return {"timeout": seq}
    finally:
        stop.set()  # not cancelled: a cancelled query would leave its connection open
        await watcher


async def _watch_rejection(db_url: str, seq: int, found: asyncio.Future[dict[str, Any]],
                           stop: asyncio.Event) -> None:
    """Resolve `found` with the `rejected_payloads` row of stream sequence ``seq`` once it exists."""
    from sqlalchemy import select

    from pinworks_common.db.engine import create_engine
    from pinworks_common.db.tables import rejected_payloads

    engine = create_engine(db_url, pool_size=1)
    try:
        while not stop.is_set():
            async with engine.connect() as conn:
                row = (await conn.execute(select(rejected_payloads).where(
                    rejected_payloads.c.stream_seq == seq))).first()
            if row is not None:
                if not found.done():
                    found.set_result({"rejected": dict(row._mapping)})
                return
            # The CLI polls one indexed row, every 0.2 s until told to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REJECTION_POLL_SECONDS)
    except Exception:  # the database is optional here: the outcome may still arrive
        return
    finally:
        await engine.dispose()
