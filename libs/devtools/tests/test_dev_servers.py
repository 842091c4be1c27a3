"""Real embedded servers and subprocesses: these tests start nats-server and postgres."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

import asyncpg
import nats
import pytest

from pinworks_common.nats_client import connect_options
from pinworks_devtools import (
    EmbeddedNats,
    EmbeddedPostgres,
    ServiceProcess,
    free_port,
    port_is_free,
    resolve_infrastructure,
)
from pinworks_devtools.processes import http_ok

TESTS_DIR = Path(__file__).parent


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _eventually(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)


async def test_embedded_nats_jetstream_roundtrip(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats").start()
    try:
        assert server.url.startswith("nats://127.0.0.1:")
        nc = await nats.connect(server.url, connect_timeout=5)
        try:
            js = nc.jetstream()
            await js.add_stream(name="DEVINFRA", subjects=["devinfra.>"])
            ack = await js.publish("devinfra.one", b"hello", headers={"Nats-Msg-Id": "m1"})
            duplicate = await js.publish("devinfra.one", b"hello", headers={"Nats-Msg-Id": "m1"})
            assert ack.seq == 1
            assert duplicate.duplicate
            sub = await js.pull_subscribe("devinfra.>", durable="reader")
            msgs = await sub.fetch(1, timeout=5)
            assert [m.data for m in msgs] == [b"hello"]
            await msgs[0].ack()
        finally:
            await nc.close()
        assert (tmp_path / "nats" / "jetstream").is_dir()
    finally:
        server.stop()
    assert not server.is_running
    assert _eventually(lambda: not _accepts(server.port))


async def test_embedded_postgres_serves_asyncpg_and_sqlalchemy_and_keeps_data(
    tmp_path: Path,
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    first = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        assert first.url.startswith("postgresql://")
        conn = await asyncpg.connect(first.url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
            await conn.execute("INSERT INTO kept VALUES (1, 'survives restarts')")
        finally:
            await conn.close()
        engine = create_async_engine(first.url.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            async with engine.connect() as sa_conn:
                assert (await sa_conn.execute(text("SELECT count(*) FROM kept"))).scalar() == 1
        finally:
            await engine.dispose()
    finally:
        first.stop()
    assert not first.is_running

    second = EmbeddedPostgres(tmp_path / "pg", port=free_port()).start()
    try:
        conn = await asyncpg.connect(second.url)
        try:
            assert await conn.fetchval("SELECT note FROM kept WHERE id = 1") == "survives restarts"
        finally:
            await conn.close()
    finally:
        second.stop()


def test_embedded_postgres_replaces_a_server_left_running(tmp_path: Path) -> None:
    """A launcher killed with SIGKILL leaves postgres behind; the next start must cope."""
    orphan = EmbeddedPostgres(tmp_path / "pg").start()
    orphan_pid = orphan.pid
    assert orphan_pid is not None
    successor = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        assert successor.pid != orphan_pid
        assert orphan.wait_stopped(10)
        assert _accepts(successor.port)
    finally:
        successor.stop()
        orphan.stop()


def test_embedded_nats_replaces_a_server_left_running(tmp_path: Path) -> None:
    orphan = EmbeddedNats(tmp_path / "nats").start()
    successor = EmbeddedNats(tmp_path / "nats").start()
    try:
        assert orphan.wait_stopped(10)
        assert _accepts(successor.port)
    finally:
        successor.stop()
        orphan.stop()


async def test_resolve_infrastructure_prefers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    with EmbeddedNats(tmp_path / "own-nats") as own_nats:
        monkeypatch.setenv("NATS_URL", own_nats.url)
        monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        infra = resolve_infrastructure(tmp_path / "work", allow_docker=True)
        try:
            assert infra.nats_url == own_nats.url
            assert infra.database_url == "postgresql://nobody@127.0.0.1:1/none"
            assert "environment (NATS_URL)" in infra.description
            assert "environment (DATABASE_URL)" in infra.description
            assert not (tmp_path / "work" / "nats").exists()
            assert not (tmp_path / "work" / "postgres").exists()
        finally:
            infra.close()
        assert own_nats.is_running, "closing must not stop a server it did not start"


async def test_resolve_infrastructure_embedded_fallback(tmp_path: Path, clean_env: None) -> None:
    infra = resolve_infrastructure(tmp_path, allow_docker=False)
    try:
        assert "embedded nats-server" in infra.description
        assert "embedded postgres" in infra.description
        assert infra.nats_monitor_url is not None
        with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
            await nats.connect(infra.nats_url, connect_timeout=5, allow_reconnect=False,
                               tls=ssl.create_default_context(cafile=infra.nats.client_env(
                                   "operator")["NATS_TLS_CA"]))
        nc = await nats.connect(infra.nats_url, connect_timeout=5,
                                **connect_options(infra.nats.client_env("operator")))
        await nc.close()
        conn = await asyncpg.connect(infra.database_url)
        assert await conn.fetchval("SELECT current_database()") == "pinworks"
        await conn.close()
    finally:
        infra.close()
    nats_port = int(infra.nats_url.rsplit(":", 1)[1])
    assert _eventually(lambda: not _accepts(nats_port))


def _fake_service(tmp_path: Path, **extra: str) -> ServiceProcess:
    env = {"PYTHONPATH": str(TESTS_DIR), **extra}
    return ServiceProcess("fake", env, tmp_path / "logs", module="fake_service")


def test_service_process_lifecycle(tmp_path: Path) -> None:
    service = _fake_service(tmp_path)
    assert service.module == "fake_service"
    service.start()
    try:
        service.wait_ready(timeout=20)
        first_pid = service.pid
        assert service.is_running
        assert service.ready_url.endswith(f":{service.health_port}/readyz")

        service.kill(signal.SIGKILL)
        assert service.wait_exit(10) == -signal.SIGKILL
        assert not service.is_running

        service.restart()
        service.wait_ready(timeout=20)
        assert service.pid != first_pid
        assert service.starts == 2

        assert service.stop(timeout=10) == 0
        assert not service.is_running
    finally:
        service.stop(timeout=5)
    log = service.log_text()
    assert log.count("starting fake_service") == 2
    assert "fake service stopped" in log


def test_service_process_reports_early_death(tmp_path: Path) -> None:
    service = _fake_service(tmp_path, FAKE_FAIL_AT_START="1")
    service.start()
    try:
        with pytest.raises(RuntimeError, match="exited before it was ready") as excinfo:
            service.wait_ready(timeout=20)
        assert "failing on purpose" in str(excinfo.value)
        assert service.returncode == 3
    finally:
        service.stop()


def test_service_process_uses_this_interpreter(tmp_path: Path) -> None:
    service = _fake_service(tmp_path)
    service.start()
    try:
        service.wait_ready(timeout=20)
        import psutil

        assert psutil.Process(service.pid).cmdline()[:3] == [sys.executable, "-m", "fake_service"]
    finally:
        service.stop()


def test_free_port_does_not_repeat_itself() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50


def test_service_processes_sharing_one_env_get_their_own_health_ports(tmp_path: Path) -> None:
    env = {"NATS_URL": "nats://127.0.0.1:1"}
    services = [ServiceProcess(name, env, tmp_path) for name in ("a", "b", "c", "d", "e")]
    assert len({s.health_port for s in services}) == 5
    assert "PINWORKS_HEALTH_PORT" not in env


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root-only layout")
async def test_embedded_postgres_as_root_survives_a_locked_parent(tmp_path: Path) -> None:
    """A pytest session starting as root chmods /tmp/pytest-of-root to 0700 under our feet."""
    locked = tmp_path / "locked"
    server = EmbeddedPostgres(locked / "pg").start()
    try:
        assert server.pgdata.is_symlink()
        os.chmod(locked, 0o700)
        os.chmod(tmp_path, 0o700)
        conn = await asyncpg.connect(server.url)
        try:
            await conn.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
            await conn.execute("CHECKPOINT")
            assert await conn.fetchval("SELECT count(*) FROM t") == 1000
        finally:
            await conn.close()
    finally:
        server.stop()


def test_a_default_port_taken_after_the_check_moves_nats_to_free_ports(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default port that looked free but is bound by the time nats-server binds it (another
    program in between) costs a retry on free ports, not the platform's start."""
    from pinworks_devtools import infrastructure

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = int(taken.getsockname()[1])
    monkeypatch.setattr(infrastructure, "DEFAULT_NATS_MONITOR_PORT", taken_port)
    monkeypatch.setattr(infrastructure, "preferred_or_free",
                        lambda port, prefer: port if prefer else free_port())
    endpoint = infrastructure.resolve_nats(tmp_path, allow_docker=False,
                                           prefer_default_ports=True)
    try:
        assert endpoint.monitor_url is not None
        assert f":{taken_port}" not in endpoint.monitor_url
        assert _eventually(lambda: http_ok(f"{endpoint.monitor_url}/healthz"))
    finally:
        endpoint.close()
        taken.close()
