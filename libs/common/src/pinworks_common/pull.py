"""How a stage's pull consumer gathers a batch: wait for the first message, then take what the
consumer already holds, up to the batch size, and go.

FastStream's batch loop fetches until the batch is full or its window has passed, so at a
steady low rate every message waited most of the window at every stage (5 stages x 50 ms was
most of a ticket's latency at 20 tickets/s). Here a batch is whatever arrived while the last one
was being processed: one message when the platform is quiet, full batches under load, so the
batch size follows the load by itself and no timer sits in the path.

The rest of a batch is asked for with one `no_wait` pull request without an expiry
(`take_waiting`): nats-server answers it at once with what it holds and a status that closes it.
nats-py's `fetch` adds an expiry to the same request, and the server then keeps it open until
the expiry passes when fewer messages than asked for are waiting, which is every time at low load:
each hop waited out that window (2 ms, 3-6 on a busy machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import ServiceUnavailableError

log = logging.getLogger("pinworks.pull")

IDLE_WAIT_SECONDS = 1.0
"""How long one pull request waits for a first message before it is renewed (an idle consumer
asks once a second, not twenty times)."""
RETRY_SECONDS = 0.2
"""Pause after NATS refused a pull (disconnected, JetStream unavailable) before asking again."""


async def take_waiting(subscription: Any, limit: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
    """Up to `limit` messages the consumer already holds, without waiting for more: those the
    client has already received, then one `no_wait` request read until the server's status
    ends it (or `timeout` passes with no answer: NATS is away; anything it sends later waits in
    the subscription's queue for the next fetch)."""
    pending = subscription._sub._pending_queue  # nats-py's: what arrived for earlier requests
    taken: list[Any] = []
    while len(taken) < limit and not pending.empty():
        message = pending.get_nowait()
        subscription._sub._pending_size -= len(message.data)
        if not _status(message):
            taken.append(message)
    if len(taken) == limit:
        return taken
    with contextlib.suppress(ConnectionClosedError, ServiceUnavailableError):
        await _ask_for_waiting(subscription, limit - len(taken), timeout, taken)
    return taken


async def _ask_for_waiting(subscription: Any, limit: int, timeout: float,  # noqa: ASYNC109
                           taken: list[Any]) -> None:
    """One `no_wait` request for `limit` messages, its answers appended to `taken` as they come
    (so a connection lost halfway keeps what came)."""
    wanted = len(taken) + limit
    request = {"batch": limit, "no_wait": True}
    await subscription._nc.publish(subscription._nms, json.dumps(request).encode(),
                                   subscription._deliver)
    deadline = asyncio.get_running_loop().time() + timeout
    while len(taken) < wanted:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            message = await subscription._sub.next_msg(timeout=max(remaining, 0.0))
        except (TimeoutError, NatsTimeoutError):
            return
        status = _status(message)
        if not status:
            taken.append(message)
        elif status != api.StatusCode.CONTROL_MESSAGE:
            return  # 404 no messages, 408, 409: this request (or a stale one) is over


def _status(message: Any) -> str | None:
    return message.headers.get(api.Header.STATUS) if message.headers else None


async def next_batch(subscription: Any, batch_size: int, drain_seconds: float) -> list[Any]:
    """The first message (waiting up to `IDLE_WAIT_SECONDS`), then every one the consumer
    already holds up to `batch_size` (`take_waiting`, waiting at most `drain_seconds` for
    NATS's answer); [] when nothing came."""
    try:
        messages = list(await subscription.fetch(1, timeout=IDLE_WAIT_SECONDS))
    except (TimeoutError, NatsTimeoutError):
        return []
    if batch_size > 1:
        messages += await take_waiting(subscription, batch_size - 1, drain_seconds)
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
