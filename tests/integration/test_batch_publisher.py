"""The services' publisher on real NATS: a batch's publications go out together with their
`Nats-Msg-Id`s and headers, a repeated batch is dropped by JetStream's duplicate window, and a
publication JetStream refuses (or no stream holds) fails the whole call at once, so the stage
retries its batch message by message and acks none of it first."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js.errors import APIError, NoStreamResponseError

from pinworks_common.ledger import Publication
from pinworks_common.service import (
    JetStreamPublisher,
    create_broker,
    ensure_streams,
    make_publisher,
)
from pinworks_common.settings import CommonSettings
from pinworks_contracts.subjects import OUTCOMES_STREAM, WORK_STREAM

pytestmark = pytest.mark.integration


async def test_a_batch_is_published_once_with_its_ids_and_a_refusal_fails_it(
        nats_url: str) -> None:
    rid = uuid.uuid4().hex[:8]
    subject = f"pinworks.work.publisher-{rid}"
    settings = CommonSettings(NATS_URL=nats_url, DATABASE_URL="postgresql://unused@127.0.0.1:1/x")
    broker = create_broker(settings, "publisher-test")
    await broker.connect()
    try:
        await ensure_streams(broker)
        js = broker.config.connection_state.stream
        publish = make_publisher(broker)
        batch = [Publication(subject, f"payload {n}".encode(), f"{rid}:{n}", WORK_STREAM,
                             headers={"traceparent": f"00-{rid * 4}-{n:016x}-01"})
                 for n in range(3)]
        await publish.publish_all(batch)
        subscription = await js.pull_subscribe(subject, stream=WORK_STREAM)
        received = await subscription.fetch(3, timeout=5)
        assert [m.data for m in received] == [b"payload 0", b"payload 1", b"payload 2"]
        assert [m.headers["Nats-Msg-Id"] for m in received] == [f"{rid}:{n}" for n in range(3)]
        assert [m.headers["traceparent"] for m in received] == [
            p.headers["traceparent"] for p in batch]
        for message in received:
            await message.ack()
        last = await js.get_last_msg(WORK_STREAM, subject)

        await publish.publish_all(batch)  # a redelivered batch's re-publish
        assert (await js.get_last_msg(WORK_STREAM, subject)).seq == last.seq, "dropped"

        # a refusal settles its publish: the call fails with it, not after waiting an hour
        patient = JetStreamPublisher(broker, timeout=3600)
        refused = Publication(subject, b"elsewhere", f"{rid}:refused", OUTCOMES_STREAM)
        fresh = Publication(subject, b"fresh", f"{rid}:fresh", WORK_STREAM)
        with pytest.raises(APIError, match="expected stream does not match"):
            await asyncio.wait_for(patient.publish_all([fresh, refused]), 60)
        nowhere = Publication(f"pinworks.nowhere-{rid}", b"", f"{rid}:nowhere", WORK_STREAM)
        with pytest.raises(NoStreamResponseError):
            await asyncio.wait_for(patient.publish_all([nowhere]), 60)
        assert (await js.get_last_msg(WORK_STREAM, subject)).data == b"fresh"
        for publisher in (publish, patient):  # settled or failed, no batch is still waited on
            assert publisher._acks is not None and publisher._acks._waiting == {}
    finally:
        await broker.stop()
