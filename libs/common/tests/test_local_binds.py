"""Local runs listen on loopback only: a laptop's `make run` must not expose its health port
(metrics name business units) to the network it sits on; pods opt in to 0.0.0.0 (the chart)."""

import pytest

from pinworks_common.health import HealthServer
from pinworks_common.settings import CommonSettings


def test_the_health_port_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINWORKS_HEALTH_HOST", raising=False)
    assert CommonSettings().health_host == "127.0.0.1"
    monkeypatch.setenv("PINWORKS_HEALTH_HOST", "0.0.0.0")
    assert CommonSettings().health_host == "0.0.0.0", "a pod sets the wildcard explicitly"


async def test_a_health_server_without_a_host_binds_loopback() -> None:
    async def ready() -> bool:
        return True

    server = HealthServer(0, ready)
    await server.start()
    try:
        assert server._server is not None
        assert {s.getsockname()[0] for s in server._server.sockets} == {"127.0.0.1"}
    finally:
        await server.stop()
