"""A message that kills its process on every delivery, on real NATS and Postgres: the stage runs
in a subprocess that `os._exit`s whenever its batch holds the poison ticket, restarted each time
like a supervisor would. The poison ticket is dead-lettered (row, dead-letter subject, handed
to a person) after PINWORKS_MAX_UNFINISHED_DELIVERIES deliveries it never finished, and every
other ticket, its batch-mates and those submitted while it kept killing the stage, is recorded
exactly once, the later ones before the poison is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import func, select, update

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import dead_letters, decisions, unfinished_deliveries
from pinworks_common.deliveries import PostgresUnfinishedDeliveries
from pinworks_common.service import create_broker, ensure_streams
from pinworks_common.settings import CommonSettings
from pinworks_contracts.messages import (
    EscalationRequest,
)
from pinworks_contracts.subjects import ESCALATION_REQUESTED, WORK_STREAM, dead_letter_subject
from tests.conftest import Database
from tests.integration.dying_stage import DIED, STAGE, envelope

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_UNFINISHED = 3
DEADLINE_SECONDS = 120.0


async def test_a_message_that_kills_its_process_is_dead_lettered_and_others_flow(
    nats_url: str, database: Database,
) -> None:
    rid = uuid.uuid4().hex[:8]
    subject, durable = f"pinworks.work.dying-{rid}", f"dying-{rid}"
    service_url = database.service_url("router")
    early = [f"{rid}-early-{n}" for n in range(10)]
    late = [f"{rid}-late-{n}" for n in range(10)]
    poison = f"{rid}-POISON"
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": service_url,
           "PINWORKS_ACK_WAIT_SECONDS": "2",
           "PINWORKS_MAX_UNFINISHED_DELIVERIES": str(MAX_UNFINISHED),
           "PINWORKS_BATCH_SIZE": "64"}
    broker = create_broker(CommonSettings(NATS_URL=nats_url, DATABASE_URL=service_url), "test")
    engine = create_engine(database.admin_url, pool_size=1)
    exits: list[int] = []
    process: asyncio.subprocess.Process | None = None

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.dying_stage", subject, durable,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL)

    async def submit(ticket_ids: list[str]) -> None:
        for ticket_id in ticket_ids:
            await js.publish(subject, envelope(ticket_id), stream=WORK_STREAM,
                             headers={"Nats-Msg-Id": f"{ticket_id}:dying"})

    async def recorded() -> dict[str, datetime]:
        async with engine.connect() as conn:
            rows = await conn.execute(select(decisions.c.ticket_id, decisions.c.created_at).where(
                decisions.c.stage == STAGE, decisions.c.ticket_id.like(f"{rid}-%")))
            return {ticket_id: at for ticket_id, at in rows}

    async def letter() -> object:
        async with engine.connect() as conn:
            return (await conn.execute(select(dead_letters).where(
                dead_letters.c.stage == STAGE, dead_letters.c.ticket_id == poison))).first()

    try:
        await broker.connect()
        await ensure_streams(broker)
        js = broker.config.connection_state.stream
        # what the stage hands on from now, kept past the run (an idle ephemeral consumer goes)
        since_now = ConsumerConfig(deliver_policy=DeliverPolicy.NEW,
                                   inactive_threshold=DEADLINE_SECONDS + 60)
        watch = await js.pull_subscribe(ESCALATION_REQUESTED, stream=WORK_STREAM,
                                        config=since_now)
        letters = await js.pull_subscribe(dead_letter_subject(STAGE), config=since_now)
        await submit([*early[:5], poison, *early[5:]])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        process = await start()
        while loop.time() < deadline:
            try:
                exits.append(await asyncio.wait_for(process.wait(), 0.5))
                process = await start()  # the supervisor restarts it
                if len(exits) == 1:  # the stage keeps dying; tickets keep coming
                    await submit(late)
            except TimeoutError:
                pass
            if await letter() is not None and (await recorded()).keys() == {*early, *late}:
                break
        row = await letter()
        assert row is not None, f"no dead letter within {DEADLINE_SECONDS}s; exits {exits}"
        stored = await recorded()
        assert stored.keys() == {*early, *late}
        assert exits == [DIED] * MAX_UNFINISHED, "dead-lettered after MAX_UNFINISHED deaths"
        assert row.deliveries == MAX_UNFINISHED + 1
        assert f"begun {MAX_UNFINISHED} times and never finished" in row.error
        assert all(stored[ticket_id] < row.created_at for ticket_id in late), \
            "tickets submitted meanwhile were not held up until the poison went"
        async with engine.connect() as conn:
            count = (await conn.execute(select(decisions.c.ticket_id).where(
                decisions.c.stage == STAGE, decisions.c.ticket_id.like(f"{rid}-%")))).all()
            assert len(count) == len(early) + len(late), "each recorded once"
            left = (await conn.execute(select(unfinished_deliveries).where(
                unfinished_deliveries.c.stage == STAGE,
                unfinished_deliveries.c.stream_seq == row.stream_seq))).all()
            assert left == [], "a dead-lettered message leaves no count behind"
        [dead] = await letters.fetch(1, timeout=10)
        assert json.loads(dead.data)["ticket_id"] == poison
        escalated = [EscalationRequest.model_validate_json(message.data)
                     for message in await watch.fetch(10, timeout=5)]
        [request] = [r for r in escalated if r.envelope.ticket.ticket_id == poison]
        assert request.source_stage == STAGE and "never finished" in request.reasons[0]
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()
        await engine.dispose()
        await broker.stop()


async def test_counts_of_many_messages_change_in_one_statement_each(database: Database) -> None:
    engine = create_engine(database.service_url("router"), pool_size=1)  # a service's grants
    stage, counts = f"counts-{uuid.uuid4().hex[:8]}", PostgresUnfinishedDeliveries(engine)
    try:
        await counts.begin(stage, [1, 2, 3])
        await counts.begin(stage, [2])
        assert await counts.counts(stage, [1, 2, 3, 4]) == {1: 1, 2: 2, 3: 1}
        await counts.take_back(stage, [2, 3])
        await counts.take_back(stage, [3])  # never below 0
        assert await counts.counts(stage, [1, 2, 3]) == {1: 1, 2: 1, 3: 0}
        await counts.forget(stage, [1, 2])
        assert await counts.counts(stage, [1, 2, 3]) == {3: 0}
        assert await counts.counts(f"other-{stage}", [3]) == {}, "each stage's own"
    finally:
        await engine.dispose()


async def test_counts_older_than_the_max_age_are_swept_in_bounded_statements(
        database: Database) -> None:
    engine = create_engine(database.service_url("router"), pool_size=1)  # a service's grants
    admin = create_engine(database.admin_url, pool_size=1)
    stage, counts = f"sweep-{uuid.uuid4().hex[:8]}", PostgresUnfinishedDeliveries(engine)
    try:
        await counts.begin(stage, [1, 2, 3, 4, 5])
        await counts.begin(f"other-{stage}", [1])
        async with admin.begin() as conn:  # as if these were last counted two hours ago
            await conn.execute(update(unfinished_deliveries).where(
                unfinished_deliveries.c.stage.in_([stage, f"other-{stage}"]),
                unfinished_deliveries.c.stream_seq <= 3,
            ).values(updated_at=func.now() - timedelta(hours=2)))
        assert await counts.sweep(stage, 3 * 3600, limit=10) == 0, "younger than the max age"
        assert await counts.sweep(stage, 3600, limit=2) == 2
        assert await counts.counts(stage, [1, 2, 3, 4, 5]) == {3: 1, 4: 1, 5: 1}, "oldest first"
        assert await counts.sweep(stage, 3600, limit=2) == 1
        assert await counts.sweep(stage, 3600, limit=2) == 0
        assert await counts.counts(stage, [1, 2, 3, 4, 5]) == {4: 1, 5: 1}
        assert await counts.counts(f"other-{stage}", [1]) == {1: 1}, "each stage sweeps its own"
    finally:
        await engine.dispose()
        await admin.dispose()
