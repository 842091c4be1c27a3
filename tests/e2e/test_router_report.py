"""`pinworks report costs` reconciles to the cent with the ledger (real Postgres)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_cli.report import GroupBy, cost_report
from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import REPORTS
from pinworks_common.db.tables import cost_ledger, tickets
from pinworks_common.pricing import default_prices, estimated_cost
from tests.conftest import Database

pytestmark = pytest.mark.integration


def _seed(database_url: str, tag: str) -> dict[str, object]:
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    units = [f"retail-{tag}", f"wealth-{tag}"]
    ticket_rows, ledger_rows = [], []
    for i in range(6):
        tid = f"rep-{tag}-{i}"
        ticket_rows.append({
            "ticket_id": tid, "business_unit": units[i % 2], "subject": "card" if i else None,
            "body": "where is my card? " * (i + 1), "metadata": {}, "submission_seq": i,
            "trace_id": "t", "received_at": now,
        })
        ledger_rows.append({"ticket_id": tid, "business_unit": units[i % 2],
                            "component": "classifier", "entry_key": "classify",
                            "amount_usd": Decimal("0.000013")})
        ledger_rows.append({"ticket_id": tid, "business_unit": units[i % 2],
                            "component": "specialist:llm_small" if i % 3 else "specialist:kb",
                            "entry_key": "draft", "amount_usd": Decimal("0.000377") * (i + 1)})
    # an entry before the window must not count
    ledger_rows.append({"ticket_id": f"rep-{tag}-0", "business_unit": units[0],
                        "component": "specialist:kb", "entry_key": "old",
                        "amount_usd": Decimal("5"), "created_at": old})

    async def go() -> None:
        engine = create_engine(database_url, pool_size=1)
        async with engine.begin() as conn:
            await conn.execute(insert(tickets), ticket_rows)
            await conn.execute(insert(cost_ledger), [r for r in ledger_rows if "created_at" not in r])
            await conn.execute(insert(cost_ledger), [r for r in ledger_rows if "created_at" in r])
        await engine.dispose()

    asyncio.run(go())
    return {"units": units, "tickets": ticket_rows, "since": now - timedelta(days=1)}


def _ledger_sum(database_url: str, unit: str, since: datetime) -> Decimal:
    async def go() -> Decimal:
        engine = create_engine(database_url, pool_size=1)
        async with engine.connect() as conn:
            value = (await conn.execute(
                select(func.sum(cost_ledger.c.amount_usd))
                .where(cost_ledger.c.business_unit == unit, cost_ledger.c.created_at >= since)
            )).scalar_one()
        await engine.dispose()
        return Decimal(value)
    return asyncio.run(go())


@pytest.fixture
def seeded(migrated_database_url: str) -> dict[str, object]:
    return _seed(migrated_database_url, uuid.uuid4().hex[:8])


def test_report_reconciles_with_the_ledger_and_prices_the_baseline(
    migrated_database_url: str, database: Database, seeded: dict[str, object]
) -> None:
    units: list[str] = seeded["units"]  # type: ignore[assignment]
    since: datetime = seeded["since"]  # type: ignore[assignment]

    async def go() -> list:  # type: ignore[type-arg]
        engine = create_engine(database.role_urls[REPORTS], pool_size=1)
        async with engine.connect() as conn:
            report = await cost_report(conn, by=GroupBy.business_unit, since=since,
                                       business_units=units, prices=default_prices())
        await engine.dispose()
        return report

    report = asyncio.run(go())
    by_group = {row.group: row for row in report}
    assert list(by_group) == [units[1], units[0], "TOTAL"]  # wealth spent more
    frontier = default_prices()["llm_frontier"]
    for unit in units:
        assert by_group[unit].compound_usd == _ledger_sum(migrated_database_url, unit, since)
        assert by_group[unit].tickets == 3 and by_group[unit].entries == 6
        expected = sum(
            (estimated_cost(frontier, f"{t['subject']}\n{t['body']}" if t["subject"] else
                            str(t["body"])).quantize(Decimal("0.000001"))
             for t in seeded["tickets"] if t["business_unit"] == unit),  # type: ignore[attr-defined]
            Decimal(0))
        assert by_group[unit].frontier_baseline_usd == expected
    # hand-computed: classifier 6 x 0.000013 + 0.000377 x (1+..+6)
    assert by_group["TOTAL"].compound_usd == Decimal("0.000078") + Decimal("0.000377") * 21
    # frontier on a ~20-token ticket: 0.001 + 0.0025 * (5 + 400) / 1000 + 0.01 * 200 / 1000
    assert by_group[units[0]].frontier_baseline_usd > Decimal("0.009")


def test_cli_formats(migrated_database_url: str, database: Database,
                     seeded: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database.role_urls[REPORTS])  # reports read, nothing more
    units: list[str] = seeded["units"]  # type: ignore[assignment]
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    args = ["report", "costs", "--by", "business_unit", "--since", since,
            "--business-unit", units[0], "--business-unit", units[1]]
    runner = CliRunner()
    as_json = runner.invoke(app, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    total = rows[-1]
    assert total["business_unit"] == "TOTAL"
    assert Decimal(total["compound_usd"]) == sum(
        (_ledger_sum(migrated_database_url, u, seeded["since"]) for u in units),  # type: ignore[arg-type]
        Decimal(0))
    as_csv = runner.invoke(app, [*args, "--format", "csv"])
    parsed = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["business_unit"] for r in parsed] == [r["business_unit"] for r in rows]
    assert parsed[-1]["saving_usd"] == total["saving_usd"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "all-frontier" in table.output and units[0] in table.output
    by_component = runner.invoke(app, [*args[:3], "component", *args[4:], "--format", "json"])
    components = {r["component"]: r for r in json.loads(by_component.output)}
    assert components["classifier"]["entries"] == 6
    assert components["classifier"]["frontier_baseline_usd"] is None
    by_day = runner.invoke(app, [*args[:3], "day", *args[4:], "--format", "json"])
    days = json.loads(by_day.output)
    assert days[-1]["compound_usd"] == total["compound_usd"]
    assert days[-1]["frontier_baseline_usd"] == total["frontier_baseline_usd"]
    bad = runner.invoke(app, ["report", "costs", "--since", "yesterday"])
    assert bad.exit_code != 0 and "not an ISO date" in bad.output
