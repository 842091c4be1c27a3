"""Signing in to the console on real Postgres, through the console's ASGI app: the throttle per
account and per address decides before any argon2 work (a brute force ends locked, the right
password is refused while locked, no password is hashed then), and sessions live on the server
(logout and a password change end them, the old cookie and token stop working)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import signin_throttle
from pinworks_escalation.auth import PASSWORD_CHECKS, hash_password
from pinworks_escalation.console import create_console
from pinworks_escalation.console.deps import COOKIE
from pinworks_escalation.console.server import ConsoleServer
from pinworks_escalation.queue import save_agent
from pinworks_escalation.settings import EscalationSettings
from pinworks_escalation.signin import account_key, address_key

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ACCOUNT_ATTEMPTS = 5
ADDRESS_ATTEMPTS = 8
LOCKOUT_SECONDS = 600


@dataclass
class Setup:
    engine: AsyncEngine
    settings: EscalationSettings
    agent: str
    unit: str


@pytest_asyncio.fixture
async def setup(migrated_database_url: str) -> AsyncIterator[Setup]:
    engine = create_engine(migrated_database_url, pool_size=4)
    tag = uuid.uuid4().hex[:10]
    agent, unit = f"signin-{tag}", f"retail-{tag}"
    async with engine.begin() as conn:
        await save_agent(conn, agent, hash_password(PASSWORD), [unit])
    settings = EscalationSettings(
        DATABASE_URL=migrated_database_url, ESCALATION_SIGNIN_ACCOUNT_ATTEMPTS=ACCOUNT_ATTEMPTS,
        ESCALATION_SIGNIN_ADDRESS_ATTEMPTS=ADDRESS_ATTEMPTS,
        ESCALATION_SIGNIN_LOCKOUT_SECONDS=LOCKOUT_SECONDS)
    assert settings.signin_policy().address_attempts == ADDRESS_ATTEMPTS
    try:
        yield Setup(engine, settings, agent, unit)
    finally:
        await engine.dispose()


def client_from(setup: Setup, address: str, address_attempts: int = ADDRESS_ATTEMPTS
                ) -> httpx.AsyncClient:
    """A client of the console app seen as coming from `address`."""
    settings = setup.settings.model_copy(update={"signin_address_attempts": address_attempts})
    app = create_console(setup.engine, settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://127.0.0.1:8000")


def checks() -> float:
    return PASSWORD_CHECKS._value.get()


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post("/api/session", json={"name": name, "password": password})


async def locked_until_seconds(setup: Setup, key: str) -> float:
    async with setup.engine.connect() as conn:
        return float((await conn.execute(select(
            text("extract(epoch from locked_until - now())")).select_from(signin_throttle)
            .where(signin_throttle.c.key == key))).scalar_one())


async def end_lockout(setup: Setup, key: str) -> None:
    """The lockout runs out (moved into the past rather than waited for)."""
    async with setup.engine.begin() as conn:
        await conn.execute(update(signin_throttle).where(signin_throttle.c.key == key)
                           .values(locked_until=text("now() - interval '1 second'")))


async def test_a_brute_force_ends_locked_and_the_lockout_costs_no_hashing(setup: Setup) -> None:
    async with client_from(setup, "10.1.0.1", address_attempts=100) as client:
        before = checks()
        for _ in range(ACCOUNT_ATTEMPTS):
            assert (await sign_in(client, setup.agent, "wrong password")).status_code == 401
        assert checks() == before + ACCOUNT_ATTEMPTS, "each admitted attempt is verified once"

        locked = await sign_in(client, setup.agent, "wrong password")
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        during = checks()
        right = await sign_in(client, setup.agent, PASSWORD)
        assert right.status_code == 429, "the right password is refused while locked"
        assert COOKIE not in right.cookies
        for _ in range(10):
            assert (await sign_in(client, setup.agent, "another guess")).status_code == 429
        assert checks() == during, "no argon2 work while the account is locked"
        first = await locked_until_seconds(setup, account_key(setup.agent))
        assert LOCKOUT_SECONDS - 30 < first <= LOCKOUT_SECONDS

        await end_lockout(setup, account_key(setup.agent))
        for _ in range(ACCOUNT_ATTEMPTS + 1):
            await sign_in(client, setup.agent, "wrong password")
        second = await locked_until_seconds(setup, account_key(setup.agent))
        assert 2 * LOCKOUT_SECONDS - 30 < second <= 2 * LOCKOUT_SECONDS, "backoff doubles"

        await end_lockout(setup, account_key(setup.agent))
        assert (await sign_in(client, setup.agent, PASSWORD)).status_code == 200


async def test_one_address_guessing_many_names_is_locked_for_every_name(setup: Setup) -> None:
    async with client_from(setup, "10.2.0.1") as attacker, \
            client_from(setup, "10.2.0.2") as colleague:
        for n in range(ADDRESS_ATTEMPTS):
            assert (await sign_in(attacker, f"nobody-{n}-{setup.agent}", "guess guess")
                    ).status_code == 401
        before = checks()
        assert (await sign_in(attacker, setup.agent, PASSWORD)).status_code == 429
        assert checks() == before
        assert await locked_until_seconds(setup, address_key("10.2.0.1")) > 0
        assert (await sign_in(colleague, setup.agent, PASSWORD)).status_code == 200, \
            "another address is not locked by this one"


async def test_parallel_guesses_cannot_outrun_the_throttle(setup: Setup) -> None:
    async with client_from(setup, "10.3.0.1") as client:
        before = checks()
        answers = await asyncio.gather(*(sign_in(client, setup.agent, f"guess {n} guess")
                                         for n in range(20)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(401) == ACCOUNT_ATTEMPTS and codes.count(429) == 20 - ACCOUNT_ATTEMPTS
        assert checks() - before == ACCOUNT_ATTEMPTS, "only admitted attempts are hashed"


async def test_logout_ends_the_session_on_the_server(setup: Setup) -> None:
    async with client_from(setup, "10.4.0.1") as client:
        signed = await sign_in(client, setup.agent, PASSWORD)
        assert signed.status_code == 200
        cookie = signed.cookies[COOKIE]
        me = await client.get("/api/me")
        assert me.status_code == 200 and me.json()["agent"] == setup.agent
        csrf = {"X-CSRF-Token": signed.json()["csrf_token"]}
        assert (await client.delete("/api/session", headers=csrf)).status_code == 204
    async with client_from(setup, "10.4.0.1") as replay:
        replay.cookies.set(COOKIE, cookie)
        stale = await replay.get("/api/me")
        assert stale.status_code == 401, "the old cookie no longer works"
        assert "basic" not in stale.headers.get("www-authenticate", "").lower()
        page = await replay.get("/")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_a_password_change_ends_every_session_and_token(setup: Setup) -> None:
    async with client_from(setup, "10.5.0.1") as client:
        assert (await sign_in(client, setup.agent, PASSWORD)).status_code == 200
        issued = await client.post("/api/tokens", json={"name": setup.agent, "password": PASSWORD})
        assert issued.status_code == 200
        bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
        async with client_from(setup, "10.5.0.2") as script:
            assert (await script.get("/api/me", headers=bearer)).status_code == 200
            async with setup.engine.begin() as conn:
                await save_agent(conn, setup.agent, hash_password("a new long password"),
                                 [setup.unit])
            assert (await script.get("/api/me", headers=bearer)).status_code == 401
        assert (await client.get("/api/me")).status_code == 401
        assert (await client.post("/api/tokens", json={
            "name": setup.agent, "password": "a new long password"})).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _throttled_keys_over_http(setup: Setup, forwarded_allow_ips: str,
                                    forwarded_for: str) -> set[str]:
    """Sign in wrongly through the real HTTP server, claiming `forwarded_for` in
    X-Forwarded-For; the throttle's keys that the attempt counted."""
    port = _free_port()
    server = ConsoleServer(create_console(setup.engine, setup.settings), "127.0.0.1", port,
                           forwarded_allow_ips=forwarded_allow_ips)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = await client.post(
                "/api/session", json={"name": f"nobody-{setup.agent}", "password": "guess"},
                headers={"X-Forwarded-For": forwarded_for})
            assert answer.status_code == 401
    finally:
        await server.stop()
    async with setup.engine.connect() as conn:
        keys = (await conn.execute(select(signin_throttle.c.key).where(
            signin_throttle.c.key.like("address:%")))).scalars()
        return set(keys)


async def test_only_a_configured_proxy_may_name_the_clients_address(setup: Setup) -> None:
    untrusted = await _throttled_keys_over_http(setup, "", "203.0.113.7")
    assert address_key("203.0.113.7") not in untrusted, \
        "without a trusted proxy a header cannot pick the throttle's address"
    behind_proxy = await _throttled_keys_over_http(setup, "127.0.0.1", "198.51.100.9")
    assert address_key("198.51.100.9") in behind_proxy, \
        "behind a configured proxy each client is throttled on its own address"
