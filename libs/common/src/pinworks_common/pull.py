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
from dataclasses import dataclass
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


class UnsupportedNatsClient(TypeError):
    """The installed nats-py no longer has the pull subscription internals `take_waiting` uses."""


@dataclass(frozen=True)
class _PullInternals:
    """What `take_waiting` needs of nats-py's `JetStreamContext.PullSubscription` beyond its
    public API, which has no pull request with `no_wait` and no expiry (its `fetch` adds one
    whenever the client holds nothing yet) and reads its inbox one message at a time through
    `next_msg` (a task, a uuid4 and a timer per message)."""

    inbox: Any
    """The subscription's `nats.aio.subscription.Subscription`."""
    queue: asyncio.Queue[Any]
    """What arrived on the inbox, not yet read (`Subscription._pending_queue`)."""
    client: Any
    """The connection the pull request is published on."""
    next_subject: str
    """`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`."""
    deliver: str
    """The inbox the server answers on."""

    @classmethod
    def of(cls, subscription: Any) -> _PullInternals:
        try:
            inbox = subscription._sub
            internals = cls(inbox, inbox._pending_queue, subscription._nc,
                            subscription._nms, subscription._deliver)
            pending_size = inbox._pending_size
        except AttributeError as error:
            raise UnsupportedNatsClient(
                f"nats-py {_nats_version()}: {type(subscription).__name__} has no "
                f"{error.name!r} (pinworks_common.pull reads nats-py's pull subscription "
                "internals; update it for this nats-py or pin the version in uv.lock)") from None
        if not isinstance(internals.queue, asyncio.Queue) or not isinstance(pending_size, int):
            raise UnsupportedNatsClient(
                f"nats-py {_nats_version()}: the pull subscription's pending queue is a "
                f"{type(internals.queue).__name__} and its size a {type(pending_size).__name__}"
                ", not an asyncio.Queue and an int")
        return internals

    def take_held(self, limit: int, taken: list[Any]) -> None:
        """Append to `taken` what the inbox already holds, up to `limit` in all, skipping the
        status messages that ended earlier requests."""
        while len(taken) < limit and not self.queue.empty():
            message = self.queue.get_nowait()
            self.inbox._pending_size -= len(message.data)
            if not _status(message):
                taken.append(message)


def check_nats_client() -> None:
    """Fail now, with the reason, if the installed nats-py lacks what `take_waiting` uses: a
    pull subscription built offline (no server) is inspected as a real one would be."""
    import nats
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext

    client = nats.NATS()
    subscription = JetStreamContext.PullSubscription(
        JetStreamContext(client), Subscription(client), "STREAM", "consumer", b"_INBOX.probe")
    _PullInternals.of(subscription)


def _nats_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nats-py")
    except PackageNotFoundError:
        return "(unknown version)"


async def take_waiting(subscription: Any, limit: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
    """Up to `limit` messages the consumer already holds, without waiting for more: those the
    client has already received, then one `no_wait` request read until the server's status
    ends it (or `timeout` passes with no answer: NATS is away; anything it sends later waits in
    the subscription's queue for the next fetch)."""
    internals = _PullInternals.of(subscription)
    taken: list[Any] = []
    internals.take_held(limit, taken)
    if len(taken) == limit:
        return taken
    with contextlib.suppress(ConnectionClosedError, ServiceUnavailableError):
        await _ask_for_waiting(internals, limit - len(taken), timeout, taken)
    return taken


async def _ask_for_waiting(internals: _PullInternals, limit: int, timeout: float,  # noqa: ASYNC109
                           taken: list[Any]) -> None:
    """One `no_wait` request for `limit` messages, its answers appended to `taken` as they come
    (so a connection lost halfway keeps what came). What a read from the socket put in the
    inbox is taken at once; only an empty inbox is waited on."""
    wanted = len(taken) + limit
    request = {"batch": limit, "no_wait": True}
    await internals.client.publish(internals.next_subject, json.dumps(request).encode(),
                                   internals.deliver)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    queue = internals.queue
    while len(taken) < wanted:
        if queue.empty():
            try:
                async with asyncio.timeout_at(deadline):
                    message = await queue.get()
            except TimeoutError:
                return
        else:
            message = queue.get_nowait()
        internals.inbox._pending_size -= len(message.data)
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
    check_nats_client()

    async def consume_pull() -> None:
        await consume_batches(subscriber, batch_size, drain_seconds)

    subscriber._consume_pull = consume_pull
