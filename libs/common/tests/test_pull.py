"""How a stage gathers a batch: the first message, then only what NATS already holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError

from pinworks_common.pull import IDLE_WAIT_SECONDS, adopt, consume_batches, next_batch


class Scripted:
    """A pull subscription answering each fetch, and each request for what is waiting
    (`take_waiting`, patched to ask it), from a script (a list, or an error)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int, float]] = []

    def _answer(self) -> list[Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)

    async def fetch(self, batch: int, timeout: float) -> list[Any]:  # noqa: ASYNC109 - nats-py's
        self.calls.append(("fetch", batch, timeout))
        return self._answer()

    async def take_waiting(self, limit: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
        self.calls.append(("take_waiting", limit, timeout))
        return self._answer()


@pytest.fixture(autouse=True)
def _scripted_take_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    async def take_waiting(subscription: Scripted, limit: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
        return await subscription.take_waiting(limit, timeout)

    monkeypatch.setattr("pinworks_common.pull.take_waiting", take_waiting)


async def test_a_partial_batch_goes_at_once_instead_of_waiting_to_fill() -> None:
    subscription = Scripted(["m1"], ["m2", "m3"], ["never asked for"])
    assert await next_batch(subscription, 128, 0.25) == ["m1", "m2", "m3"]
    assert subscription.calls == [("fetch", 1, IDLE_WAIT_SECONDS), ("take_waiting", 127, 0.25)]


async def test_a_lone_message_goes_when_nothing_else_is_waiting() -> None:
    subscription = Scripted(["m1"], [])
    assert await next_batch(subscription, 128, 0.25) == ["m1"]


async def test_an_idle_consumer_returns_nothing_and_batch_size_one_never_drains() -> None:
    assert await next_batch(Scripted(NatsTimeoutError()), 128, 0.25) == []
    assert await next_batch(Scripted(TimeoutError()), 128, 0.25) == []
    single = Scripted(["m1"])
    assert await next_batch(single, 1, 0.25) == ["m1"]
    assert single.calls == [("fetch", 1, IDLE_WAIT_SECONDS)]


class Subscriber:
    """The part of a FastStream batch pull subscriber the loop uses."""

    def __init__(self, subscription: Scripted, batches_wanted: int) -> None:
        self.subscription = subscription
        self.running = True
        self.batches: list[list[Any]] = []
        self.wanted = batches_wanted

    async def _consume_pull(self) -> None:
        raise AssertionError("replaced by adopt")

    async def consume(self, messages: list[Any]) -> None:
        self.batches.append(messages)
        if len(self.batches) == self.wanted:
            self.running = False


async def test_the_adopted_loop_hands_each_batch_on_and_outlives_a_refused_pull(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pinworks_common.pull.RETRY_SECONDS", 0)
    subscription = Scripted(["a"], ["b"], NatsTimeoutError(), ConnectionClosedError(),
                            ["c"], [])
    subscriber = Subscriber(subscription, batches_wanted=2)
    adopt(subscriber, 8, 0.002)
    await asyncio.wait_for(subscriber._consume_pull(), 10)
    assert subscriber.batches == [["a", "b"], ["c"]]


def test_adopt_refuses_a_subscriber_without_a_pull_loop() -> None:
    with pytest.raises(TypeError):
        adopt(object(), 8, 0.002)


async def test_consume_batches_stops_when_the_subscriber_stops() -> None:
    subscriber = Subscriber(Scripted(), batches_wanted=1)
    subscriber.running = False
    await asyncio.wait_for(consume_batches(subscriber, 8, 0.002), 5)
    assert subscriber.batches == []
