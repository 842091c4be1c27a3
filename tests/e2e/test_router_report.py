"""`pinworks report costs` reconciles to the cent with the ledger and counts the people in it
from the audit (real Postgres)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_cli.report import CostRow, GroupBy, cost_report
from pinworks_common.db.engine import create_engine
from pinworks_common.db.roles import REPORTS
from pinworks_common.db.tables import cost_ledger, outcomes, tickets
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


def _seed_people(database_url: str, unit: str) -> dict[str, Any]:
    """Five tickets of `unit`: answered automatically; resolved by a person (charged 1.50);
    waiting for a person; sent back and then answered automatically; and waiting at `until`
    but resolved (and charged) after it."""
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    names = ("auto", "person", "waiting", "returned", "late")
    ids = {name: f"ppl-{unit}-{name}" for name in names}
    texts = {name: f"my card {name} never came " * (n + 1) for n, name in enumerate(names)}
    ledger = [{"ticket_id": ids[n], "business_unit": unit, "component": "classifier",
               "entry_key": "classify", "amount_usd": Decimal("0.00002")} for n in names]
    ledger += [{"ticket_id": ids["auto"], "business_unit": unit, "component": "specialist:template",
                "entry_key": "draft", "amount_usd": Decimal("0.0005")},
               {"ticket_id": ids["person"], "business_unit": unit, "component": "agent",
                "entry_key": "agent", "amount_usd": Decimal("1.50")}]
    late_charge = {"ticket_id": ids["late"], "business_unit": unit, "component": "agent",
                   "entry_key": "agent", "amount_usd": Decimal("1.50"), "created_at": later}

    def outcome(name: str, key: str, status: str, by: str, at: datetime) -> dict[str, object]:
        return {"ticket_id": ids[name], "outcome_key": key, "status": status, "created_at": at,
                "payload": {"ticket_id": ids[name], "status": status, "resolved_by": by,
                            "business_unit": unit}}

    outcomes_rows = [
        outcome("auto", "automation", "resolved", "automation", now),
        outcome("person", "automation", "escalated", "automation", now),
        outcome("person", "human", "resolved", "ana", now),
        outcome("waiting", "automation", "escalated", "automation", now),
        outcome("returned", "automation", "escalated", "automation", now),
        outcome("returned", "automation@1", "resolved", "automation", now),
        outcome("late", "automation", "escalated", "automation", now),
        outcome("late", "human", "resolved", "bo", later),
    ]

    async def go() -> None:
        engine = create_engine(database_url, pool_size=1)
        async with engine.begin() as conn:
            await conn.execute(insert(tickets), [
                {"ticket_id": ids[n], "business_unit": unit, "subject": None, "body": texts[n],
                 "metadata": {}, "submission_seq": i, "trace_id": "t", "received_at": now}
                for i, n in enumerate(names)])
            await conn.execute(insert(cost_ledger), ledger)
            await conn.execute(insert(cost_ledger), [late_charge])
            await conn.execute(insert(outcomes), outcomes_rows)
        await engine.dispose()

    asyncio.run(go())
    return {"texts": list(texts.values()), "since": now - timedelta(minutes=5),
            "until": now + timedelta(hours=1)}


def test_people_come_from_the_audit_and_the_waiting_are_priced_at_the_agent_cost(
    migrated_database_url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinworks_router.calibration.economics import baselines

    unit = f"people-{uuid.uuid4().hex[:8]}"
    seeded = _seed_people(migrated_database_url, unit)
    agent_cost = Decimal("2.00")  # not what was charged: the ledger stays the ledger

    async def go() -> list[CostRow]:
        engine = create_engine(database.role_urls[REPORTS], pool_size=1)
        async with engine.connect() as conn:
            report = await cost_report(conn, by=GroupBy.business_unit, since=seeded["since"],
                                       until=seeded["until"], business_units=[unit],
                                       prices=default_prices(), agent_cost=agent_cost)
        await engine.dispose()
        return report

    row, total = asyncio.run(go())
    assert (row.group, total.group) == (unit, "TOTAL")
    compound = Decimal("0.00002") * 5 + Decimal("0.0005") + Decimal("1.50")
    assert row.compound_usd == compound  # the late resolution's charge is after `until`
    people = row.people
    assert people is not None
    # person, waiting and late (waiting at `until`); auto and returned were automation's
    assert (people.tickets, people.awaiting) == (3, 2)
    assert (people.charged_usd, people.awaiting_usd) == (Decimal("1.50"), Decimal("4.00"))
    data = row.as_dict("business_unit")
    assert Decimal(data["with_people_usd"]) == compound + 4
    assert Decimal(data["cost_per_ticket_usd"]) == ((compound + 4) / 5).quantize(Decimal("0.000001"))
    assert Decimal(data["all_human_per_ticket_usd"]) == agent_cost
    assert Decimal(data["saving_usd"]) == row.frontier_baseline_usd - compound - 4
    assert total.as_dict("business_unit") == {**data, "business_unit": "TOTAL"}
    # `pinworks policy calibrate` prices the same baselines for the same tickets
    calibrated = baselines(default_prices(), [(None, t) for t in seeded["texts"]], agent_cost)
    assert abs(Decimal(data["frontier_per_ticket_usd"]) - calibrated.all_frontier) < Decimal("0.000001")
    assert Decimal(data["all_human_per_ticket_usd"]) == calibrated.all_human

    monkeypatch.setenv("DATABASE_URL", database.role_urls[REPORTS])
    monkeypatch.setenv("PINWORKS_AGENT_COST_USD", "2.00")
    table = CliRunner().invoke(app, ["report", "costs", "--business-unit", unit,
                                     "--until", seeded["until"].isoformat()],
                               )
    assert table.exit_code == 0, table.output
    assert "all-human" in table.output and "3 (2)" in table.output
    assert "a person costs 2.00 USD per ticket" in " ".join(table.output.split())


def _report(database: Database, unit: str, since: datetime, until: datetime | None,
            agent_cost: Decimal) -> CostRow:
    async def go() -> CostRow:
        engine = create_engine(database.role_urls[REPORTS], pool_size=1)
        async with engine.connect() as conn:
            report = await cost_report(conn, by=GroupBy.business_unit, since=since, until=until,
                                       business_units=[unit], prices=default_prices(),
                                       agent_cost=agent_cost)
        await engine.dispose()
        return report[-1]
    return asyncio.run(go())


def _store(database_url: str, rows: dict[Any, list[dict[str, Any]]]) -> None:
    async def go() -> None:
        engine = create_engine(database_url, pool_size=1)
        async with engine.begin() as conn:
            for table, values in rows.items():
                if values:
                    await conn.execute(insert(table), values)
        await engine.dispose()
    asyncio.run(go())


def test_a_reopened_ticket_waits_for_a_person_until_one_answers_it(
    migrated_database_url: str, database: Database
) -> None:
    """Answered automatically, then reopened by an agent: waiting for a person (priced at the
    agent cost) until a person resolves it; a reopening after `until` is not seen at `until`."""
    from pinworks_common.db.tables import accountability

    unit = f"reopen-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    names = ("reopened", "answered", "late")
    ids = {name: f"ro-{unit}-{name}" for name in names}
    reopen_at = {"reopened": now + timedelta(minutes=1), "answered": now + timedelta(minutes=1),
                 "late": now + timedelta(hours=2)}

    def outcome(name: str, key: str, by: str, at: datetime) -> dict[str, object]:
        return {"ticket_id": ids[name], "outcome_key": key, "status": "resolved", "created_at": at,
                "payload": {"ticket_id": ids[name], "status": "resolved", "resolved_by": by,
                            "business_unit": unit}}

    _store(migrated_database_url, {
        tickets: [{"ticket_id": ids[n], "business_unit": unit, "subject": None,
                   "body": f"where is my card {n}", "metadata": {}, "submission_seq": i,
                   "trace_id": "t", "received_at": now} for i, n in enumerate(names)],
        cost_ledger: [{"ticket_id": ids[n], "business_unit": unit, "component": "classifier",
                       "entry_key": "classify", "amount_usd": Decimal("0.00002")}
                      for n in names] + [
            {"ticket_id": ids["answered"], "business_unit": unit, "component": "agent",
             "entry_key": "agent", "amount_usd": Decimal("1.50"),
             "created_at": now + timedelta(minutes=2)}],
        outcomes: [outcome(n, "automation", "automation", now) for n in names]
        + [outcome("answered", "human", "ana", now + timedelta(minutes=2))],
        accountability: [{"ticket_id": ids[n], "event_key": f"person:ana:reopen:{n}",
                          "actor_type": "person", "actor": "ana", "action": "reopen",
                          "details": {"reason": "the answer missed"}, "created_at": reopen_at[n]}
                         for n in names],
    })
    agent_cost = Decimal("2.00")
    row = _report(database, unit, now - timedelta(minutes=5), now + timedelta(hours=1), agent_cost)
    assert row.people is not None
    # reopened waits; answered was resolved by a person after its reopening; late's reopening
    # comes after `until`, so at `until` it was still automation's answer
    assert (row.people.tickets, row.people.awaiting) == (2, 1)
    assert (row.people.charged_usd, row.people.awaiting_usd) == (Decimal("1.50"), agent_cost)
    later = _report(database, unit, now - timedelta(minutes=5), None, agent_cost)
    assert later.people is not None and (later.people.tickets, later.people.awaiting) == (3, 2)


def test_calibrate_and_report_costs_price_the_same_tickets_alike(
    migrated_database_url: str, database: Database, tmp_path: Any
) -> None:
    """Tickets routed by the shipped policy as calibration routes them, charged to the ledger as
    the platform charges them (the classifier on each, the handler on each automatic answer, an
    agent on each ticket a person resolves): `report costs` and calibration's cost per ticket
    agree."""
    from pinworks_router.calibration.cells import route_all
    from pinworks_router.calibration.curve import figures
    from pinworks_router.calibration.dataset import load_calibration_set
    from pinworks_router.calibration.economics import Charges
    from pinworks_router.calibration.synthetic import write_synthetic_set
    from pinworks_router.policy import load_policy

    write_synthetic_set(tmp_path / "data", [("card_arrival", 40), ("change_pin", 40)],
                        out_of_scope=20, wrong_at=0.05)
    items = load_calibration_set(tmp_path / "data")
    prices = default_prices()
    routed = route_all(load_policy(), items, prices)
    charges = Charges.from_environment({"PINWORKS_AGENT_COST_USD": "1.75",
                                        "CLASSIFIER_COST_USD": "0.00003"})
    assert {r.automatic for r in routed} == {True, False}, "both kinds of ticket are priced"
    assert {r.handler for r in routed} - {"human"} != set()

    unit = f"agree-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    rows: dict[Any, list[dict[str, Any]]] = {tickets: [], cost_ledger: [], outcomes: []}
    for n, r in enumerate(routed):
        tid = f"{unit}-{n}"
        rows[tickets].append({"ticket_id": tid, "business_unit": unit,
                              "subject": r.item.ticket.subject, "body": r.item.ticket.body,
                              "metadata": {}, "submission_seq": n, "trace_id": "t",
                              "received_at": now})
        charge = [("classifier", "classify", charges.classifier)]
        charge.append((f"specialist:{r.handler}", "draft", r.cost) if r.automatic
                      else ("agent", "agent", charges.agent))
        rows[cost_ledger] += [{"ticket_id": tid, "business_unit": unit, "component": c,
                               "entry_key": k, "amount_usd": a} for c, k, a in charge if a]
        steps = [("automation", "resolved", "automation")] if r.automatic else [
            ("automation", "escalated", "automation"), ("human", "resolved", "ana")]
        rows[outcomes] += [{"ticket_id": tid, "outcome_key": key, "status": status,
                            "payload": {"ticket_id": tid, "status": status, "resolved_by": by,
                                        "business_unit": unit}} for key, status, by in steps]
    _store(migrated_database_url, rows)

    row = _report(database, unit, now - timedelta(minutes=5), None, charges.agent)
    calibrated = figures(routed, (r.automatic for r in routed), charges)
    reported = row.per_ticket(row.with_people_usd)
    assert reported is not None and row.tickets == len(routed)
    # the ledger keeps 6 decimals per entry, calibration the estimate's own: within a micro-dollar
    assert abs(reported - calibrated.cost_per_ticket) <= Decimal("0.000001"), (
        reported, calibrated.cost_per_ticket)
    without_classifier = figures(routed, (r.automatic for r in routed),
                                 Charges(charges.agent, Decimal(0)))
    assert abs(reported - without_classifier.cost_per_ticket) > Decimal("0.00002"), (
        "the classifier's charge is in both")
