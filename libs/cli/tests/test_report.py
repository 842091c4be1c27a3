"""Rendering and argument parsing of `pinworks report costs` (the ledger test is in tests/e2e)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import typer

from pinworks_cli.costs import People
from pinworks_cli.report import CostRow, Format, render
from pinworks_common.commands.options import parse_when

PEOPLE = People(tickets=1, awaiting=1, charged_usd=Decimal(0), awaiting_usd=Decimal("1.5"),
                all_human_usd=Decimal("3"))
ROWS = [CostRow("wealth", 2, 4, Decimal("0.012000"), Decimal("0.030000"), PEOPLE),
        CostRow("TOTAL", 2, 4, Decimal("0.012000"), Decimal("0.030000"), PEOPLE)]


def test_parse_when() -> None:
    assert parse_when("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_when("2026-11-01T10:00:00+01:00").utcoffset() is not None
    with pytest.raises(typer.BadParameter, match="not an ISO date"):
        parse_when("last week")


def test_json_and_csv_carry_exact_amounts_and_saving() -> None:
    data = json.loads(render(ROWS, "business_unit", Format.json))
    # the waiting ticket's agent is not in the ledger yet: priced at the agent cost
    assert data[0] == {"business_unit": "wealth", "tickets": 2, "entries": 4,
                       "compound_usd": "0.012000", "people_tickets": 1, "awaiting_people": 1,
                       "people_usd": "1.500000", "with_people_usd": "1.512000",
                       "cost_per_ticket_usd": "0.756000", "frontier_baseline_usd": "0.030000",
                       "frontier_per_ticket_usd": "0.015000",
                       "all_human_baseline_usd": "3.000000",
                       "all_human_per_ticket_usd": "1.500000", "saving_usd": "-1.482000"}
    rows = list(csv.DictReader(io.StringIO(render(ROWS, "business_unit", Format.csv))))
    assert rows[1]["business_unit"] == "TOTAL" and rows[1]["saving_usd"] == "-1.482000"
    no_baseline = [CostRow("classifier", 2, 2, Decimal("0.1"), None)]
    [component] = json.loads(render(no_baseline, "component", Format.json))
    assert component["saving_usd"] is None and component["cost_per_ticket_usd"] is None
    assert component["people_tickets"] is None and component["all_human_baseline_usd"] is None


def test_nobody_waiting_keeps_the_report_the_ledger() -> None:
    charged = People(tickets=1, awaiting=0, charged_usd=Decimal("1.5"), awaiting_usd=Decimal(0),
                     all_human_usd=Decimal("4.5"))
    row = CostRow("retail", 3, 7, Decimal("1.503000"), Decimal("0.030000"), charged)
    data = row.as_dict("business_unit")
    assert data["with_people_usd"] == data["compound_usd"] == "1.503000"
    assert (data["people_usd"], data["cost_per_ticket_usd"]) == ("1.500000", "0.501000")
    assert data["all_human_per_ticket_usd"] == "1.500000"
