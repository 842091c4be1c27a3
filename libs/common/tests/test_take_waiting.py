"""`take_waiting` over a stand-in of nats-py's pull subscription: what the client already
received goes first, a server status ends the request, and a connection lost halfway keeps
every message that came (none waits out an ack wait unprocessed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nats.errors import ConnectionClosedError

from pinworks_common.pull import UnsupportedNatsClient, check_nats_client, take_waiting


class Message:
    def __init__(self, data: bytes, status: str | None = None) -> None:
        self.data = data
        self.headers = {"Status": status} if status else None


class Inbox:
    """nats-py's Subscription: its pending queue (take_waiting never calls its `next_msg`)."""

    def __init__(self) -> None:
        self._pending_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._pending_size = 0

    def deliver(self, *messages: Message) -> None:
        for message in messages:
            self._pending_queue.put_nowait(message)
            self._pending_size += len(message.data)


class Server:
    """Answers a pull request with what the consumer holds and a 404, or fails to publish."""

    def __init__(self, inbox: Inbox, held: list[Message], *, closed: bool = False) -> None:
        self.inbox, self.held, self.closed = inbox, held, closed
        self.requests: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        if self.closed:
            raise ConnectionClosedError
        request = json.loads(payload)
        self.requests.append(request)
        given, self.held = self.held[:request["batch"]], self.held[request["batch"]:]
        self.inbox.deliver(*given)
        if len(given) < request["batch"]:
            self.inbox.deliver(Message(b"", "404"))


class Subscription:
    def __init__(self, held: list[Message], *, closed: bool = False) -> None:
        self._sub = Inbox()
        self._nc = Server(self._sub, held, closed=closed)
        self._nms, self._deliver = "$JS.API.CONSUMER.MSG.NEXT.S.C", "_INBOX.x"


def _data(messages: list[Any]) -> list[bytes]:
    return [message.data for message in messages]


async def test_the_request_has_no_expiry_and_a_404_ends_it() -> None:
    subscription = Subscription([Message(b"a"), Message(b"b")])
    assert _data(await take_waiting(subscription, 10, 60)) == [b"a", b"b"]
    assert subscription._nc.requests == [{"batch": 10, "no_wait": True}]
    assert _data(await asyncio.wait_for(take_waiting(subscription, 10, 60), 10)) == []


async def test_what_the_client_holds_goes_first_and_a_stale_status_is_skipped() -> None:
    subscription = Subscription([Message(b"c")])
    subscription._sub.deliver(Message(b"", "408"), Message(b"a"), Message(b"b"))
    assert _data(await take_waiting(subscription, 2, 60)) == [b"a", b"b"]
    assert subscription._nc.requests == []
    assert _data(await take_waiting(subscription, 5, 60)) == [b"c"]
    assert subscription._sub._pending_size == 0


async def test_a_lost_connection_keeps_what_came() -> None:
    subscription = Subscription([], closed=True)
    subscription._sub.deliver(Message(b"a"))
    assert _data(await take_waiting(subscription, 5, 60)) == [b"a"]


def test_the_installed_nats_client_has_what_take_waiting_reads() -> None:
    """Fails when nats-py renames or drops a pull subscription internal take_waiting uses
    (and so does every service's app creation, through `adopt`)."""
    check_nats_client()


async def test_a_nats_client_without_those_internals_is_refused_with_the_reason() -> None:
    subscription = Subscription([])
    del subscription._sub._pending_queue
    with pytest.raises(UnsupportedNatsClient, match="has no '_pending_queue'"):
        await take_waiting(subscription, 4, 1.0)
    other = Subscription([])
    other._sub._pending_queue = []  # type: ignore[assignment]
    with pytest.raises(UnsupportedNatsClient, match="not an asyncio.Queue"):
        await take_waiting(other, 4, 1.0)
