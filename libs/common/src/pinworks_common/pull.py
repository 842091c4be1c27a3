"""How a stage's pull consumer gathers a batch: wait for the first message, then take what the
consumer already holds, up to the batch size, and go.

FastStream's batch loop fetches until the batch is full or its window has passed, so at a
steady low rate every message waited most of the window at every stage (5 stages x 50 ms was
most of a ticket's latency at 20 tickets/s). Here a batch is whatever arrived while the last one
was being processed: one message when the platform is quiet, full batches under load, so the
batch size follows the load by itself and no timer sits in the path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError

log = logging.getLogger("pinworks.pull")

IDLE_WAIT_SECONDS = 1.0
"""How long one pull request waits for a first message before it is renewed (an idle consumer
asks once a second, not twenty times)."""
RETRY_SECONDS = 0.2
"""Pause after NATS refused a pull (disconnected, JetStream unavailable) before asking again."""


async def next_batch(subscription: Any, batch_size: int, drain_seconds: float) -> list[Any]:
    """The first message (waiting up to `IDLE_WAIT_SECONDS`), then every one the consumer
    already holds up to `batch_size`, waiting at most `drain_seconds` for that answer; [] when
    nothing came."""
    try:
        messages = list(await subscription.fetch(1, timeout=IDLE_WAIT_SECONDS))
    except (TimeoutError, NatsTimeoutError):
        return []
    if batch_size > 1:
        try:
            messages += await subscription.fetch(batch_size - 1, timeout=drain_seconds)
        except (TimeoutError, NatsTimeoutError):
            pass  # nothing more was waiting
        except (ConnectionClosedError, ServiceUnavailableError):
            pass  # the first message is processed; its ack waits for NATS like any other
    return messages


async def consume_batches(subscriber: Any, batch_size: int, drain_seconds: float) -> None:
    """The loop of a FastStream batch pull subscriber (its `_consume_pull`), batching as above;
    each batch goes to `subscriber.consume`, as FastStream's own loop hands it."""
    subscription = subscriber.subscription
    while subscriber.running:
        try:
            messages = await next_batch(subscription, batch_size, drain_seconds)
        except (ConnectionClosedError, ServiceUnavailableError) as error:
            log.debug("pull refused (%r); asking again", error)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if messages and subscriber.running:
            await subscriber.consume(messages)


def adopt(subscriber: Any, batch_size: int, drain_seconds: float) -> None:
    """Make `subscriber` (a FastStream batch pull subscriber, not yet started) gather its
    batches with `consume_batches`. FastStream starts the loop through `_consume_pull` when it
    subscribes; a FastStream without it fails here, at app creation, not silently later."""
    if not callable(getattr(subscriber, "_consume_pull", None)):
        raise TypeError(f"{type(subscriber).__name__} has no pull loop to replace")

    async def consume_pull() -> None:
        await consume_batches(subscriber, batch_size, drain_seconds)

    subscriber._consume_pull = consume_pull
