"""Erasure and retention on real Postgres: a ticket's or customer's personal data leaves every
table, the append-only audit stays as it was (it never held the data) and records the erasure.
Erasing runs as the role that does it in production (`pinworks erase`: the operator; retention:
the escalation service), so a grant it lacks, or one on the audit it would need, fails here."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import OPERATOR, SERVICE_ROLES
from pinworks_common.db.tables import (
    agents,
    decisions,
    escalations,
    labelled_examples,
    outbox,
    tickets,
)
from pinworks_common.ledger import records
from pinworks_common.ledger.postgres import PostgresBooks
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import Outcome, pinworks_ticket_id
from pinworks_contracts.subjects import OutcomeStatus
from pinworks_escalation.erasure import (
    ERASE_ACTION,
    ErasureRefused,
    RetentionTask,
    erase_for_agent,
    erase_tickets,
    tickets_of_customer,
)
from tests.conftest import Database

pytestmark = pytest.mark.integration

CARD, EMAIL, NAME, STREET = "4111 1111 1111 1111", "jane.doe@example.com", "Jane Doe", "12 Acacia Avenue"
PERSONAL = (CARD, EMAIL, NAME, STREET, "Jane", "07700 900123")
BODY = f"I am {NAME}, card {CARD}, mail {EMAIL}, phone 07700 900123, I live at {STREET}, Leeds."
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """The superuser's: the tests' own seeding and checks."""
    engine = create_engine(migrated_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def operator_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.role_urls[OPERATOR], pool_size=1)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def escalation_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.role_urls[SERVICE_ROLES["escalation"]], pool_size=1)
    yield engine
    await engine.dispose()


async def seed(engine: AsyncEngine, *, customer: str, received: datetime = NOW,
               queue_status: str | None = "resolved", platform: str | None = None) -> str:
    """A ticket as the pipeline leaves it: its row, its audit (through the ledger), an
    escalation with the queued envelope and the agent's reply, a labelled example and a
    published outbox message."""
    ticket_id = f"E-{uuid.uuid4().hex[:10]}"
    if platform is not None:
        ticket_id = pinworks_ticket_id(platform, ticket_id)
    metadata = {"customer_name": NAME, "tier": "gold", "note": f"call {EMAIL}"}
    async with engine.begin() as conn:
        await conn.execute(insert(tickets).values(
            ticket_id=ticket_id, business_unit="retail", subject=f"card for {NAME}", body=BODY,
            customer_id=customer, metadata=metadata, submission_seq=1, trace_id="t",
            received_at=received, platform=platform))
        if queue_status:
            await conn.execute(insert(escalations).values(
                ticket_id=ticket_id, business_unit="retail", status=queue_status, priority=1,
                source_stage="verifier", reasons=[], sla_due_at=received,
                context={"envelope": {"ticket": {"body": BODY, "metadata": metadata}}},
                reply=f"Dear {NAME}, we cancelled card {CARD}."))
        await conn.execute(insert(labelled_examples).values(
            ticket_id=ticket_id, example_key="agent:1", business_unit="retail", text=BODY,
            corrected_intent="card_arrival", labelled_by="ana"))
        await conn.execute(insert(outbox).values(
            subject="tickets.outcome.resolved", msg_id=f"{ticket_id}:outcome:human",
            payload=f'{{"answer": "Dear {NAME}"}}'.encode(), headers={}, published_at=received))
    async with PostgresBooks(engine).transaction() as ledger:
        await ledger.record(records.Entries(
            decisions=[records.Decision(ticket_id, "specialists", "draft", "llm", "1",
                                        inputs={"text": BODY}, output={"answer": f"Hi {NAME}"},
                                        reason="drafted")],
            outcomes=[records.OutcomeEntry("automation", Outcome(
                ticket_id=ticket_id, status=OutcomeStatus.RESOLVED, business_unit="retail",
                answer=f"Hi {NAME}, card {CARD} is cancelled.", cost_usd=Decimal("0.1"),
                resolved_by="automation", trace_id="t", decided_at=received))]))
    return ticket_id


async def every_text_of(engine: AsyncEngine, ticket_id: str) -> str:
    """Every row of every table that names the ticket, as one JSON text."""
    found: list[Any] = []
    async with engine.connect() as conn:
        for table in ("tickets", "decisions", "decision_originals", "outcomes", "outcome_originals",
                      "accountability", "escalations", "labelled_examples", "cost_ledger"):
            rows = await conn.execute(text(f"SELECT * FROM {table} WHERE ticket_id = :t"), {"t": ticket_id})
            found += [dict(row._mapping) for row in rows]
        rows = await conn.execute(select(outbox.c.payload).where(outbox.c.msg_id.startswith(ticket_id)))
        found += [bytes(row.payload).decode() for row in rows]
    return json.dumps(found, default=str)


async def test_the_audit_never_holds_the_personal_data_only_the_erasable_copies_do(
        engine: AsyncEngine) -> None:
    ticket_id = await seed(engine, customer=f"C-{uuid.uuid4().hex[:8]}")
    async with engine.connect() as conn:
        audit = [dict(row._mapping) for row in await conn.execute(
            text("SELECT inputs, output, reason FROM decisions WHERE ticket_id = :t "
                 "UNION ALL SELECT payload, NULL, NULL FROM outcomes WHERE ticket_id = :t"),
            {"t": ticket_id})]
    assert audit and not any(value in json.dumps(audit) for value in PERSONAL)
    assert CARD in await every_text_of(engine, ticket_id), "the queue and the originals keep it"


async def test_erasing_a_customer_removes_the_data_everywhere_and_leaves_the_audit(
        engine: AsyncEngine, operator_engine: AsyncEngine) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    first, second = await seed(engine, customer=customer), await seed(engine, customer=customer)
    other = await seed(engine, customer=f"C-{uuid.uuid4().hex[:8]}")
    async with engine.connect() as conn:
        audit_before = (await conn.execute(select(decisions).where(
            decisions.c.ticket_id.in_([first, second])).order_by(decisions.c.id))).all()

    async with operator_engine.begin() as conn:
        ids = await tickets_of_customer(conn, customer)
        erased = await erase_tickets(conn, ids, actor="dpo", actor_type="operator",
                                     scope=f"customer {customer}", now=NOW)
    assert sorted(item.ticket_id for item in erased) == sorted([first, second])

    for ticket_id in (first, second):
        everything = await every_text_of(engine, ticket_id)
        assert not [value for value in PERSONAL if value in everything], everything
        assert "[CARD]" in everything and "[NAME]" in everything
    assert CARD in await every_text_of(engine, other), "another customer's tickets are untouched"
    async with engine.connect() as conn:
        audit_after = (await conn.execute(select(decisions).where(
            decisions.c.ticket_id.in_([first, second])).order_by(decisions.c.id))).all()
        events = (await conn.execute(text(
            "SELECT ticket_id, actor_type, actor, details FROM accountability "
            "WHERE action = :a AND ticket_id IN (:f, :s)"),
            {"a": ERASE_ACTION, "f": first, "s": second})).all()
        row = (await conn.execute(select(tickets).where(tickets.c.ticket_id == first))).one()
    assert audit_after == audit_before, "the append-only audit is left as it was"
    assert sorted(e.ticket_id for e in events) == sorted([first, second])
    assert {(e.actor_type, e.actor) for e in events} == {("operator", "dpo")}
    assert row.personal_data_erased_at == NOW
    assert row.metadata == {"customer_name": "[NAME]", "tier": "gold", "note": "call [EMAIL]"}
    assert row.body.startswith("I am [NAME], card [CARD], mail [EMAIL], phone [PHONE]")


async def test_an_operators_erasure_is_recorded_under_a_known_agent_and_refused_otherwise(
        engine: AsyncEngine, operator_engine: AsyncEngine) -> None:
    ticket_id = await seed(engine, customer=f"C-{uuid.uuid4().hex[:8]}")
    dpo = f"dpo-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(insert(agents).values(name=dpo, password_hash="x",
                                                 business_units=["retail"]))
    with pytest.raises(ErasureRefused, match=f"no agent named 'nobody-{dpo}'"):
        async with operator_engine.begin() as conn:
            await erase_for_agent(conn, [ticket_id], agent=f"nobody-{dpo}", scope="ticket",
                                  now=NOW)
    assert CARD in await every_text_of(engine, ticket_id), "refused before anything changed"

    async with operator_engine.begin() as conn:
        [erased] = await erase_for_agent(conn, [ticket_id], agent=dpo, scope="ticket", now=NOW)
    assert erased.ticket_id == ticket_id
    assert CARD not in await every_text_of(engine, ticket_id)
    async with engine.connect() as conn:
        events = (await conn.execute(text(
            "SELECT actor_type, actor FROM accountability WHERE action = :a AND ticket_id = :t"),
            {"a": ERASE_ACTION, "t": ticket_id})).all()
    assert [(e.actor_type, e.actor) for e in events] == [("operator", dpo)]


async def test_a_customer_id_is_each_platforms_own_when_a_platform_is_named(
        engine: AsyncEngine, operator_engine: AsyncEngine) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    ours = await seed(engine, customer=customer)
    theirs = await seed(engine, customer=customer, platform="partner")
    assert theirs.startswith("partner~")
    async with operator_engine.connect() as conn:
        assert await tickets_of_customer(conn, customer, "partner") == [theirs]
        assert await tickets_of_customer(conn, customer, DEFAULT_PLATFORM) == [ours]
        assert sorted(await tickets_of_customer(conn, customer)) == sorted([ours, theirs])


async def test_retention_erases_old_resolved_tickets_and_keeps_recent_or_waiting_ones(
        engine: AsyncEngine, escalation_engine: AsyncEngine) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    old = await seed(engine, customer=customer, received=NOW - timedelta(days=91))
    old_unqueued = await seed(engine, customer=customer, received=NOW - timedelta(days=91), queue_status=None)
    waiting = await seed(engine, customer=customer, received=NOW - timedelta(days=91), queue_status="open")
    recent = await seed(engine, customer=customer, received=NOW - timedelta(days=89))
    task = RetentionTask(escalation_engine, retention_days=90, interval_seconds=3600)

    erased = {item.ticket_id for item in await task.run_once(NOW)}
    assert {old, old_unqueued} <= erased and not {waiting, recent} & erased
    for ticket_id in (old, old_unqueued):
        assert CARD not in await every_text_of(engine, ticket_id)
    for ticket_id in (waiting, recent):
        assert CARD in await every_text_of(engine, ticket_id)
    assert not {old, old_unqueued} & {item.ticket_id for item in await task.run_once(NOW)}, \
        "an erased ticket is not erased again"
    async with engine.connect() as conn:
        actors = (await conn.execute(text(
            "SELECT DISTINCT actor FROM accountability WHERE action = :a AND ticket_id = :t"),
            {"a": ERASE_ACTION, "t": old})).scalars().all()
    assert actors == ["retention"]


@pytest_asyncio.fixture
async def known_agent(engine: AsyncEngine) -> str:
    name = f"dpo-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(insert(agents).values(name=name, password_hash="x",
                                                 business_units=["retail"]))
    return name


@pytest_asyncio.fixture
async def erasable(engine: AsyncEngine) -> str:
    return await seed(engine, customer=f"C-{uuid.uuid4().hex[:8]}")


def test_pinworks_erase_refuses_before_asking_to_confirm(
        database: Database, known_agent: str, erasable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An erasure that would be refused (an unknown agent, no such ticket) is refused before
    the prompt; one that would go ahead is asked about, and nothing changes on 'no'."""
    from typer.testing import CliRunner

    from pinworks_escalation.cli.erase_commands import erase_app

    monkeypatch.setenv("DATABASE_URL", database.role_urls[OPERATOR])

    def erase(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(erase_app, list(args), input="n\n")
        return result.exit_code, " ".join(result.output.split())

    for args, refusal in (
            (["--ticket", erasable, "--by", f"nobody-{known_agent}"],
             f"no agent named 'nobody-{known_agent}'"),
            (["--ticket", f"{erasable}-gone", "--by", known_agent], "no such ticket: nothing erased"),
            (["--customer", f"nobody-{known_agent}", "--by", known_agent], "no such ticket")):
        code, output = erase(*args)
        assert code == 1 and refusal in output, output
        assert "Erase the personal data" not in output, "asked to confirm what is refused"
    code, output = erase("--ticket", erasable, "--by", known_agent)
    assert code == 1 and f"Erase the personal data of {erasable}? This cannot be undone" in output
    assert "Aborted" in output
    engine = create_engine(database.admin_url, pool_size=1)

    async def erased_at() -> object:
        try:
            async with engine.connect() as conn:
                return (await conn.execute(select(tickets.c.personal_data_erased_at)
                                           .where(tickets.c.ticket_id == erasable))).scalar_one()
        finally:
            await engine.dispose()

    assert asyncio.run(erased_at()) is None, "'no' erased nothing"
