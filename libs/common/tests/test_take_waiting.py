"""`take_waiting` over a stand-in of nats-py's pull subscription: what the client already
received goes first, a server status ends the request, and a connection lost halfway keeps
every message that came (none waits out an ack wait unprocessed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.errors import ConnectionClosedError

from pinworks_common.pull import take_waiting


class Message:
    def __init__(self, data: bytes, status: str | None = None) -> None:
        self.data = data
        self.headers = {"Status": status} if status else None


class Inbox:
    """nats-py's Subscription: its pending queue and `next_msg`."""

    def __init__(self) -> None:
        self._pending_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._pending_size = 0

    def deliver(self, *messages: Message) -> None:
        for message in messages:
            self._pending_queue.put_nowait(message)
            self._pending_size += len(message.data)

    async def next_msg(self, timeout: float) -> Message:  # noqa: ASYNC109 - nats-py's
        message = await asyncio.wait_for(self._pending_queue.get(), timeout)
        self._pending_size -= len(message.data)
        return message


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
