import asyncio

import pytest

from pinworks_common.health import HealthServer
from pinworks_common.metrics import (
    OTHER,
    BoundedLabel,
    Poller,
    after_commit,
    until_commit,
)


def test_observations_wait_for_the_commit_and_vanish_on_rollback() -> None:
    seen: list[str] = []
    with until_commit():
        after_commit(lambda: seen.append("committed"))
        assert seen == [], "nothing counts before the transaction ends"
    assert seen == ["committed"]
    with pytest.raises(RuntimeError), until_commit():
        after_commit(lambda: seen.append("rolled back"))
        raise RuntimeError("rollback")
    assert seen == ["committed"]
    after_commit(lambda: seen.append("no transaction"))
    assert seen == ["committed", "no transaction"]


def test_a_failing_observation_never_fails_the_work() -> None:
    seen: list[int] = []
    with until_commit():
        after_commit(lambda: 1 / 0)  # type: ignore[func-returns-value]
        after_commit(lambda: seen.append(1))
    assert seen == [1]


def test_a_sender_cannot_grow_a_label_without_bound() -> None:
    label = BoundedLabel(limit=2)
    assert [label(v) for v in ("a", "b", "c", "a", None)] == ["a", "b", OTHER, "a", "unknown"]


async def test_the_health_port_serves_prometheus_metrics() -> None:
    async def ready() -> bool:
        return True

    server = HealthServer(0, ready, host="127.0.0.1")
    await server.start()
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        response = (await reader.read()).decode()
    finally:
        await server.stop()
    head, body = response.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: text/plain; version=" in head
    assert "# TYPE pinworks_stage_messages_total counter" in body


async def test_a_failing_poll_is_counted_and_the_others_still_run() -> None:
    from prometheus_client import REGISTRY

    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("down")

    async def working() -> None:
        ran.append("working")

    poller = Poller(interval_seconds=60)
    poller.add("test-broken", broken)
    poller.add("test-working", working)
    before = REGISTRY.get_sample_value("pinworks_metric_poll_errors_total",
                                       {"poller": "test-broken"}) or 0
    await poller.poll_once()
    assert ran == ["working"]
    assert REGISTRY.get_sample_value("pinworks_metric_poll_errors_total",
                                     {"poller": "test-broken"}) == before + 1
