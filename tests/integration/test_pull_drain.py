"""The request for the rest of a batch on real NATS: what the consumer already holds comes in
one round trip, and with nothing waiting the server's status ends the request at once, so a
quiet stage sits out no expiry window (nats-py's `fetch` sends the same request with one)."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from pinworks_common.nats_client import connect_options
from pinworks_common.pull import next_batch, take_waiting
from pinworks_common.streams import declare_streams
from pinworks_contracts.subjects import WORK_STREAM

pytestmark = pytest.mark.integration

NEVER_REACHED = 60.0
"""The bound on NATS's answer: a request that waited for it would fail `asyncio.wait_for`."""


async def test_what_is_held_comes_at_once_and_nothing_waiting_ends_the_request(
        nats_url: str) -> None:
    nc = await nats.connect(nats_url, **connect_options())
    try:
        js = nc.jetstream()
        await declare_streams(js)
        subject = f"pinworks.work.drain-{uuid.uuid4().hex[:8]}"
        subscription = await js.pull_subscribe(subject, durable=subject.rsplit(".", 1)[1],
                                               stream=WORK_STREAM)
        for n in range(4):
            await js.publish(subject, str(n).encode(), stream=WORK_STREAM)
        batch = await next_batch(subscription, 8, NEVER_REACHED)
        assert [message.data for message in batch] == [b"0", b"1", b"2", b"3"]
        await asyncio.gather(*(message.ack() for message in batch))

        assert await asyncio.wait_for(take_waiting(subscription, 8, NEVER_REACHED), 20) == []

        for n in range(4, 7):
            await js.publish(subject, str(n).encode(), stream=WORK_STREAM)
        first = await next_batch(subscription, 2, NEVER_REACHED)
        rest = await asyncio.wait_for(take_waiting(subscription, 8, NEVER_REACHED), 20)
        assert [message.data for message in first + rest] == [b"4", b"5", b"6"]
        await asyncio.gather(*(message.ack() for message in first + rest))
    finally:
        await nc.close()
