"""Outcome message ids on real Postgres and a real JetStream stream: nobody can pre-empt one by
guessing it, and a redelivery's re-publish still carries the stored id, so it is dropped."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from pinworks_common.db.engine import create_engine
from pinworks_common.ledger import Entries, OutcomeEntry, Publication
from pinworks_common.ledger.postgres import PostgresBooks
from pinworks_common.nats_client import connect_options
from pinworks_common.streams import declare_streams
from pinworks_contracts.messages import Outcome
from pinworks_contracts.subjects import OUTCOMES_STREAM, OutcomeStatus, outcome_subject
from tests.conftest import Database

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url, **connect_options())
    js = nc.jetstream()
    await declare_streams(js)
    yield js
    await nc.close()


def escalated(ticket_id: str, reason: str) -> OutcomeEntry:
    return OutcomeEntry("automation", Outcome(
        ticket_id=ticket_id, status=OutcomeStatus.ESCALATED, business_unit="retail",
        reasons=[reason], cost_usd=Decimal("0.1"), resolved_by="automation", trace_id="t",
        decided_at=datetime(2026, 12, 1, tzinfo=UTC)))


async def publish(js: JetStreamContext, publication: Publication) -> tuple[int, bool]:
    """As the services publish (`service.make_publisher`): the stored id in `Nats-Msg-Id`."""
    ack = await js.publish(publication.subject, publication.payload, stream=publication.stream,
                           headers={**publication.headers, "Nats-Msg-Id": publication.msg_id})
    return int(ack.seq), bool(ack.duplicate)


async def test_a_preempted_old_style_id_does_not_stop_the_outcome_and_a_redelivery_is_dropped(
        js: JetStreamContext, database: Database) -> None:
    ticket_id = f"I-{uuid.uuid4().hex[:10]}"
    forged = {"ticket_id": ticket_id, "status": "resolved", "answer": "GBP 5,000 refund approved"}
    _, dropped = await publish(js, Publication(
        outcome_subject(OutcomeStatus.RESOLVED, "support"), json.dumps(forged).encode(),
        f"{ticket_id}:outcome:automation", OUTCOMES_STREAM))
    assert not dropped, "the forger's message itself is stored (it holds no genuine id)"

    engine = create_engine(database.service_url("escalation"), pool_size=1)
    books = PostgresBooks(engine)
    try:
        published: list[tuple[int, bool]] = []
        # the first delivery, then its redelivery after a crash between commit and ack
        for reason in ("first", "recomputed"):
            async with books.transaction() as ledger:
                recorded = await ledger.record(Entries(outcomes=[escalated(ticket_id, reason)]))
            [publication] = recorded.outcome_publications
            published.append(await publish(js, publication))
    finally:
        await engine.dispose()

    (seq, first_dropped), (again_seq, again_dropped) = published
    assert not first_dropped, "the genuine outcome reaches the stream"
    assert again_dropped and again_seq == seq, "the redelivery's re-publish is dropped"
    stored = await js.get_msg(OUTCOMES_STREAM, seq)
    assert json.loads(stored.data)["reasons"] == ["first"]
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] != f"{ticket_id}:outcome:automation"
