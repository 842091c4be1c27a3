"""The queue's search on real Postgres: the trigram index (migration 0015) answers searches of
three characters or more, the results are exactly what the ILIKE alone finds (any case, any of
ticket id, subject, body and customer id, literal % and _), and the migrations need no
superuser: the database's owner runs them all."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.migrate import alembic_config, upgrade
from pinworks_common.db.roles import OWNER
from pinworks_common.db.tables import escalations
from pinworks_escalation.queue import listing
from pinworks_escalation.queue.listing import QueueQuery, list_queue
from tests.conftest import Database

pytestmark = pytest.mark.integration

HEAD = str(ScriptDirectory.from_config(alembic_config("")).get_current_head())

TICKETS = {
    "body": ("Mon RELEVÉ shows a 50%_off charge", None, None),
    "subject": ("hello", "Card still HASN'T arrived", None),
    "customer": ("hello", None, "CUST-77881"),
    "ticket-id": ("hello", None, None),
}
"""name -> (body, subject, customer_id); the ticket id is `<unit>-<name>`."""


@pytest_asyncio.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def queued(engine: AsyncEngine, unit: str) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(escalations), [{
            "ticket_id": f"{unit}-{name}", "business_unit": unit, "status": "open",
            "priority": 1, "source_stage": "router", "reasons": [],
            "context": {"envelope": {"ticket": {
                "ticket_id": f"{unit}-{name}", "business_unit": unit, "body": body,
                **({"subject": subject} if subject else {}),
                **({"customer_id": customer} if customer else {})}}},
            "sla_due_at": now + timedelta(hours=1)}
            for name, (body, subject, customer) in TICKETS.items()])


async def found(engine: AsyncEngine, unit: str, search: str) -> list[str]:
    async with engine.connect() as conn:
        items = await list_queue(conn, business_units=[unit],
                                 query=QueueQuery(search=search, status="all"))
    return sorted(item.ticket_id.removeprefix(f"{unit}-") for item in items)


async def test_indexed_search_finds_exactly_what_the_ilike_finds(
        engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = f"s{uuid.uuid4().hex[:8]}"
    await queued(engine, unit)
    searches = {
        "levÉ": ["body"], "50%_off": ["body"], "0%_": ["body"], "50%x": [],
        "hasn't arrived": ["subject"], "  still hasn't ": ["subject"], "cust-778": ["customer"],
        f"{unit}-TICKET": ["ticket-id"], "hello": ["customer", "subject", "ticket-id"],
        "he": ["customer", "subject", "ticket-id"], "É": ["body"], "zzz": [],
        "t-i": ["ticket-id"],
    }
    searches |= {"relevé": None, "RELEVé": None}  # whatever lower() makes of it, both alike
    indexed = {search: await found(engine, unit, search) for search in searches}
    monkeypatch.setattr(listing, "TRIGRAM", 10**9)  # the ILIKE alone, as before the index
    assert {search: await found(engine, unit, search) for search in searches} == indexed
    assert {search: indexed[search] for search, want in searches.items()
            if want is not None} == {s: w for s, w in searches.items() if w is not None}


TEXTS = (
    "Mon RELEVÉ shows a 50%_off charge", "Ça coûte 12,50 € — trop cher!", "ΣΟΦΙΑ Straße naïve",
    "emoji 🎉 party\ttab\nnewline", "x", "ab", "  leading and trailing  ", "日本語のテキスト",
)
"""Texts for the codes' own checks: accents, other scripts, 4-byte characters, whitespace of
every kind, texts shorter than a trigram."""


async def test_the_codes_are_the_byte_trigrams_of_the_lower_cased_text(
        engine: AsyncEngine) -> None:
    """`pinworks_trigrams` is exactly the three-byte windows of lower(text)'s UTF-8, each read
    as a 24-bit number, one per window and nothing else."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT lower(t), pinworks_trigrams(t) FROM unnest(CAST(:texts AS text[])) AS t"),
            {"texts": list(TEXTS)})).all()
    for lowered, codes in rows:
        data = lowered.encode()
        assert sorted(codes) == sorted(int.from_bytes(data[i:i + 3], "big")
                                       for i in range(len(data) - 2)), lowered


async def test_every_piece_of_a_searched_field_is_found_by_the_index_condition(
        engine: AsyncEngine) -> None:
    """The index condition is a superset of the ILIKE's: for every substring of three to
    eight characters of every searched field, in any case, the row's codes hold the
    substring's."""
    unit = f"p{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    rows = [{"ticket_id": f"{unit}-{n}", "body": body, "subject": TEXTS[(n + 1) % len(TEXTS)],
             "customer_id": f"Cust-{n}-Ü"} for n, body in enumerate(TEXTS)]
    async with engine.begin() as conn:
        await conn.execute(insert(escalations), [{
            "ticket_id": row["ticket_id"], "business_unit": unit, "status": "open",
            "priority": 1, "source_stage": "router", "reasons": [],
            "context": {"envelope": {"ticket": row}}, "sla_due_at": now} for row in rows])
    ids, pieces = [], []
    for row in rows:
        for field in (row["ticket_id"], row["body"], row["subject"], row["customer_id"]):
            for size in range(3, 9):
                for start in range(len(field) - size + 1):
                    piece = field[start:start + size]
                    for cased in (piece, piece.upper(), piece.swapcase()):
                        ids.append(row["ticket_id"])
                        pieces.append(cased)
    async with engine.connect() as conn:
        missed = (await conn.execute(text(
            "SELECT p.ticket_id, p.piece FROM unnest(CAST(:ids AS text[]), "
            "CAST(:pieces AS text[])) AS p(ticket_id, piece) "
            "JOIN escalations e ON e.ticket_id = p.ticket_id "
            "WHERE NOT pinworks_escalation_trigrams(e.ticket_id, e.context) "
            "@> pinworks_trigrams(p.piece) AND (e.ticket_id || ' ' || "
            "(e.context #>> '{envelope,ticket,subject}') || ' ' || "
            "(e.context #>> '{envelope,ticket,body}') || ' ' || "
            "(e.context #>> '{envelope,ticket,customer_id}')) ILIKE '%' || p.piece || '%'"),
            {"ids": ids, "pieces": pieces})).all()
    assert len(pieces) > 1000
    assert missed == []


async def test_the_search_index_migrates_down_to_0015_and_back_up_with_exact_results(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """0016's downgrade restores 0015's text trigrams and its upgrade the codes; at each, the
    searches find exactly what the ILIKE alone finds, on rows written before the change."""
    admin = make_url(database.admin_url).set(drivername="postgresql")
    name = f"pinworks_downgrade_{uuid.uuid4().hex[:10]}"
    conn: Any = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(database.admin_url).set(database=name).render_as_string(
            hide_password=False)
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url, pool_size=1)
        unit = f"d{uuid.uuid4().hex[:8]}"
        searches = {"levÉ": ["body"], "50%_off": ["body"], "hasn't arrived": ["subject"],
                    "cust-778": ["customer"], f"{unit}-TICKET": ["ticket-id"], "zzz": []}
        try:
            await queued(engine, unit)
            for revision in ("0015", HEAD):
                if revision == HEAD:
                    await asyncio.to_thread(upgrade, url)
                else:
                    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)
                await engine.dispose()  # the functions' types changed under cached plans
                async with engine.connect() as owned:
                    assert (await owned.execute(text(
                        "SELECT version_num FROM alembic_version"))).scalar_one() == revision
                monkeypatch.setattr(listing, "TRIGRAM", 3)
                indexed = {search: await found(engine, unit, search) for search in searches}
                monkeypatch.setattr(listing, "TRIGRAM", 10**9)
                assert {search: await found(engine, unit, search)
                        for search in searches} == indexed == searches, revision
        finally:
            await engine.dispose()
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


BANKING77 = Path(__file__).resolve().parents[2] / "services/classifier/data/banking77/train.csv"


def customer_texts(count: int) -> list[str]:
    with BANKING77.open(newline="") as handle:
        return [row["text"] for row, _ in zip(csv.DictReader(handle), range(count), strict=False)]


async def test_the_owner_migrates_without_superuser_and_the_planner_uses_the_index(
        database: Database) -> None:
    """The chart's migration Job logs in as `pinworks_migrations`, the database's owner; on a
    queue of a few thousand written after the index (as a live queue is), the planner answers
    a search from the trigram index (a search shorter than a trigram never asks it)."""
    admin = make_url(database.admin_url).set(drivername="postgresql")
    name = f"pinworks_owner_{uuid.uuid4().hex[:10]}"
    conn: Any = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        assert not await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1", OWNER)
        await conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
        owner_url = make_url(database.role_urls[OWNER]).set(database=name)
        await asyncio.to_thread(upgrade, owner_url.render_as_string(hide_password=False))
        engine = create_engine(owner_url.render_as_string(hide_password=False), pool_size=1)
        try:
            now = datetime.now(UTC)
            async with engine.begin() as owned:
                assert (await owned.execute(text(
                    "SELECT version_num FROM alembic_version"))).scalar_one() == HEAD
                await owned.execute(insert(escalations), [{
                    "ticket_id": f"Q-{n:05d}", "business_unit": ("retail", "cards")[n % 2],
                    "status": ("open", "resolved", "resolved")[n % 3], "priority": n % 4,
                    "source_stage": "router", "reasons": [], "sla_due_at": now,
                    "context": {"envelope": {"ticket": {
                        "body": body}}}}
                    for n, body in enumerate(customer_texts(3000))])
                await owned.execute(text("ANALYZE escalations"))
            async with engine.connect() as owned:
                for search, indexed in (("Q-02999", True), ("refund", True),
                                        ("still hasn't arrived", True), ("ex", False)):
                    plan = await _plan(owned, QueueQuery(search=search, status="all"))
                    assert ("escalations_search_trigrams" in plan) is indexed, plan
        finally:
            await engine.dispose()
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _plan(conn: Any, query: QueueQuery) -> str:
    """EXPLAIN of the statement `list_queue` sends, with its parameters."""
    compiled = listing.page_statement(query, ["retail"]).compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    return "\n".join(line for (line,) in await conn.exec_driver_sql(
        "EXPLAIN " + compiled.string,
        tuple(compiled.params[name] for name in compiled.positiontup)))
