"""The whole platform for end-to-end tests: real NATS, real Postgres, the five services as
subprocesses. Tests talk to it only through the public contract (subjects and Postgres)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import CONSOLE, OPERATOR
from pinworks_common.db.tables import tickets
from pinworks_common.nats_client import connect_options
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import TicketEnvelope
from pinworks_contracts.subjects import (
    OUTCOME_WILDCARD,
    OUTCOMES_STREAM,
    TICKETS_STREAM,
    submission_subject,
)
from pinworks_devtools import Endpoint, ServiceProcess, free_port
from pinworks_devtools.chat_server import ChatServer
from pinworks_router.policy_trust import PolicyRecords
from pinworks_router.rollout import policy_bucket
from tests.conftest import Database

SERVICES = ("classifier", "router", "specialists", "verifier", "escalation")
PARTNER = "partner"
"""A second support platform, bound only to business units starting with `partner-`."""
PLATFORM_UNITS = {DEFAULT_PLATFORM: ["*"], PARTNER: [f"{PARTNER}-*"]}


@dataclass
class Platform:
    processes: dict[str, ServiceProcess]
    nats_url: str
    database_url: str
    env: dict[str, str]

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.log_text()[-3000:]}"
                         for name, p in self.processes.items())


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[ChatServer]:
    """A real chat-completions server on 127.0.0.1 that the `llm_small` handler calls; tests
    script its replies by a marker in the ticket text (unscripted requests get HTTP 500)."""
    with ChatServer() as server:
        yield server


@pytest.fixture(scope="session")
def platform(nats_endpoint: Endpoint, database: Database, fake_llm: ChatServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Each service connects as its own role and NATS identity; `env` (for the CLI) as the
    operator, and `database_url` is the superuser's, for the tests' own reads and setup."""
    nats_url = nats_endpoint.url
    log_dir = tmp_path_factory.mktemp("service-logs")
    console_port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database.role_urls[OPERATOR],
        "PINWORKS_ACK_WAIT_SECONDS": "4",
        "PINWORKS_BATCH_SIZE": "64",
        "PINWORKS_LOG_LEVEL": "INFO",
        "PINWORKS_MAX_DELIVERIES": "3",
        "PINWORKS_METRICS_INTERVAL_SECONDS": "0.5",
        "PINWORKS_METRICS_MAX_BUSINESS_UNITS": "100000",
        "ESCALATION_HTTP_PORT": str(console_port),
        # the CLI's queue commands call the console as the agent of `pinworks login`; no test
        # writes to the real home's token file
        "ESCALATION_URL": f"http://127.0.0.1:{console_port}",
        "PINWORKS_AGENT_TOKEN_FILE": str(tmp_path_factory.mktemp("agent") / "token.json"),
        # every test signs in from 127.0.0.1: the per-address throttle would lock them all out
        # (it is tested on its own in tests/integration/test_console_signin.py)
        "ESCALATION_SIGNIN_ADDRESS_ATTEMPTS": "100000",
        # every automatic answer enters the quality review; the guard judges a scope from 5
        # verdicts (only test_quality marks any, each in a business unit of its own)
        "ESCALATION_QUALITY_SAMPLE_RATE": "1",
        # `support` (the tests' submissions) may submit for any unit; `partner` only for its own
        "CLASSIFIER_PLATFORM_UNITS": json.dumps(PLATFORM_UNITS),
        "ROUTER_QUALITY_MIN_REVIEWS": "5",
        "ROUTER_QUALITY_REFRESH_SECONDS": "0.5",
        "SPECIALISTS_HANDLERS": "template,kb,llm_small,llm_frontier",
        "LLM_SMALL_BASE_URL": fake_llm.base_url,
        "LLM_SMALL_MODEL": "scripted-small",
        "LLM_SMALL_TIMEOUT_SECONDS": "1",
        "LLM_MAX_RETRIES": "1",
        "LLM_BACKOFF_BASE_SECONDS": "0.05",
        "LLM_DEADLINE_SECONDS": "3",
    }
    for unset in ("LLM_FRONTIER_BASE_URL", "LLM_FRONTIER_MODEL"):
        env.pop(unset, None)
    env.pop("PINWORKS_HEALTH_PORT", None)
    env["ESCALATION_CONSOLE_DATABASE_URL"] = database.role_urls[CONSOLE]
    processes = {name: ServiceProcess(name, {**env, "DATABASE_URL": database.service_url(name),
                                             **nats_endpoint.client_env(name)}, log_dir)
                 for name in SERVICES}
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready(timeout=90)
    except Exception:
        for process in processes.values():
            print(f"--- {process.name} ---\n{process.log_text()[-4000:]}")
            process.stop()
        raise
    yield Platform(processes, nats_url, database.admin_url, env)
    for process in processes.values():
        process.stop()


@dataclass
class Outcomes:
    """Every outcome stored in the outcomes stream (read by an ordered JetStream consumer), by
    ticket, in arrival order: a duplicate here is a real duplicate."""

    by_ticket: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, outcome: dict[str, Any]) -> None:
        async with self.changed:
            self.by_ticket[outcome["ticket_id"]].append(outcome)
            self.changed.notify_all()

    async def wait_for(self, ticket_ids: list[str], count: int = 1, within: float = 60
                       ) -> dict[str, list[dict[str, Any]]]:
        async def enough() -> None:
            async with self.changed:
                await self.changed.wait_for(
                    lambda: all(len(self.by_ticket[t]) >= count for t in ticket_ids))

        try:
            await asyncio.wait_for(enough(), within)
        except TimeoutError:
            missing = [t for t in ticket_ids if len(self.by_ticket[t]) < count]
            raise AssertionError(f"no outcome within {within}s for {missing[:10]} "
                                 f"({len(missing)} missing)") from None
        return {t: list(self.by_ticket[t]) for t in ticket_ids}


@dataclass
class PlatformClient:
    nc: Client
    js: JetStreamContext
    outcomes: Outcomes
    engine: AsyncEngine

    async def submit(self, ticket: dict[str, Any] | bytes, msg_id: str | None = None,
                     platform: str = DEFAULT_PLATFORM) -> int:
        """Submit on `platform`'s subject (the tests' operator identity may publish on any);
        returns the stream sequence."""
        payload = ticket if isinstance(ticket, bytes) else json.dumps(ticket).encode()
        headers = {"Nats-Msg-Id": msg_id or f"test-{uuid.uuid4()}"}
        ack = await self.js.publish(submission_subject(platform), payload, stream=TICKETS_STREAM,
                                    headers=headers)
        return int(ack.seq)

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def wait_rows(self, sql: str, within: float = 30, **params: Any) -> list[Any]:
        """The query's rows once it returns any (another service records them a moment after
        the event the test caused); fails after `within` seconds."""
        async def poll() -> list[Any]:
            while True:
                rows = await self.fetch(sql, **params)
                if rows:
                    return rows
                await asyncio.sleep(0.1)

        try:
            return await asyncio.wait_for(poll(), within)
        except TimeoutError:
            raise AssertionError(f"no rows within {within}s for {sql!r} {params}") from None


@pytest_asyncio.fixture
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    nc = await nats.connect(platform.nats_url, **connect_options())
    outcomes = Outcomes()

    async def on_outcome(msg: Any) -> None:
        await outcomes.add(json.loads(msg.data))

    js = nc.jetstream()
    subscription = await js.subscribe(OUTCOME_WILDCARD, stream=OUTCOMES_STREAM, cb=on_outcome,
                                      ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
    await nc.flush()
    engine = create_engine(platform.database_url, pool_size=2)
    try:
        yield PlatformClient(nc, js, outcomes, engine)
    finally:
        await subscription.unsubscribe()
        await nc.drain()
        await engine.dispose()


@pytest_asyncio.fixture
async def live_policy_bucket(nats_url: str, database: Database,
                             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[KeyValue, str]]:
    """A router policy KV bucket of the test's own, and its name; the in-process CLI
    (`pinworks policy ...`) talks to the same NATS and Postgres, as the operator."""
    monkeypatch.setenv("NATS_URL", nats_url)
    monkeypatch.setenv("DATABASE_URL", database.role_urls[OPERATOR])
    bucket = f"router-policy-test-{run_id()}"
    nc = await nats.connect(nats_url, **connect_options())
    try:
        yield await policy_bucket(nc.jetstream(), bucket), bucket
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def policy_records(database: Database) -> AsyncIterator[PolicyRecords]:
    """What a router replica checks KV policies with: Postgres as the router's own role."""
    engine = create_engine(database.service_url("router"), pool_size=1)
    try:
        yield PolicyRecords(engine, f"test-replica-{run_id()}")
    finally:
        await engine.dispose()


async def record_accepted(client: PlatformClient, envelope: TicketEnvelope) -> None:
    """The `tickets` row the classifier stage writes for an accepted ticket, for a test that
    hands a ticket to a later stage directly: stages trust only what the platform recorded."""
    assert envelope.classification is not None
    async with client.engine.begin() as conn:
        await conn.execute(insert(tickets).values(
            **envelope.ticket.model_dump(mode="json"), submission_seq=0,
            trace_id=envelope.trace_id, received_at=envelope.received_at,
            intent=envelope.classification.intent,
            confidence=envelope.classification.confidence,
            classification=envelope.classification.model_dump(mode="json"),
        ).on_conflict_do_nothing(index_elements=["ticket_id"]))


def run_id() -> str:
    return uuid.uuid4().hex[:8]


def fresh_unit(label: str = "unit") -> tuple[str, str]:
    """A run id and a business unit of the test's own (`label-RID`): nothing else touches it."""
    rid = run_id()
    return rid, f"{label}-{rid}"


def ticket(ticket_id: str, body: str, unit: str = "retail", **extra: Any) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "business_unit": unit, "body": body, **extra}


ROOT = Path(__file__).resolve().parents[2]

OUT_OF_SCOPE = "Can you recommend a good hotel in Lisbon for next weekend?"
"""A ticket no automation handles: the router sends it to a person (the escalation queue)."""


def cli(env: Mapping[str, str], *args: str, cwd: Path = ROOT, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    """`pinworks ARGS` as a person runs it, in a subprocess with `env` (usually platform.env)."""
    return subprocess.run([sys.executable, "-m", "pinworks_cli", *args], env=dict(env),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


AGENT_PASSWORD = "a long password"


def signed_in_env(platform: Platform, token_dir: Path, name: str, *units: str
                  ) -> dict[str, str]:
    """`platform.env` signed in with `pinworks login` as a new agent `name` serving `units`,
    with a token file of its own in `token_dir`."""
    added = cli(platform.env, "agent", "add", name, "--password", AGENT_PASSWORD,
                *[arg for unit in units for arg in ("--business-unit", unit)])
    assert added.returncode == 0, added.stdout + added.stderr
    env = {**platform.env, "PINWORKS_AGENT_TOKEN_FILE": str(token_dir / f"{name}.token"),
           "PINWORKS_AGENT_PASSWORD": AGENT_PASSWORD}
    signed = cli(env, "login", name)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    return env


def stored(env: Mapping[str, str]) -> Any:
    """What `pinworks login` wrote to the agent's token file (None when there is none)."""
    path = Path(env["PINWORKS_AGENT_TOKEN_FILE"])
    return json.loads(path.read_text()) if path.exists() else None


def console_says(platform: Platform, env: Mapping[str, str], method: str, path: str,
                 **body: str) -> tuple[int, str]:
    """What the console's API answers the same agent (its status and `detail`)."""
    response = httpx.request(method, platform.env["ESCALATION_URL"] + path, json=body or None,
                             headers={"Authorization": f"Bearer {stored(env)['token']}"},
                             timeout=30)
    return response.status_code, response.json().get("detail", "")


async def escalate(client: PlatformClient, ticket_ids: list[str], unit: str,
                   body: str = OUT_OF_SCOPE, **extra: Any) -> dict[str, list[dict[str, Any]]]:
    """Submit one ticket per id in `unit` (out of scope by default: each goes to a person) and
    return their first outcomes once all have arrived."""
    for ticket_id in ticket_ids:
        await client.submit(ticket(ticket_id, body, unit, **extra))
    return await client.outcomes.wait_for(ticket_ids)
