"""Rendering and argument parsing of `pinworks report costs` (the ledger test is in tests/e2e)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import typer

from pinworks_cli.report import CostRow, Format, render
from pinworks_common.commands.options import parse_when

ROWS = [CostRow("wealth", 2, 4, Decimal("0.012000"), Decimal("0.030000")),
        CostRow("TOTAL", 2, 4, Decimal("0.012000"), Decimal("0.030000"))]


def test_parse_when() -> None:
    assert parse_when("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_when("2026-11-01T10:00:00+01:00").utcoffset() is not None
    with pytest.raises(typer.BadParameter, match="not an ISO date"):
        parse_when("last week")


def test_json_and_csv_carry_exact_amounts_and_saving() -> None:
    data = json.loads(render(ROWS, "business_unit", Format.json))
    assert data[0] == {"business_unit": "wealth", "tickets": 2, "entries": 4,
                       "compound_usd": "0.012000", "frontier_baseline_usd": "0.030000",
                       "saving_usd": "0.018000"}
    rows = list(csv.DictReader(io.StringIO(render(ROWS, "business_unit", Format.csv))))
    assert rows[1]["business_unit"] == "TOTAL" and rows[1]["saving_usd"] == "0.018000"
    no_baseline = [CostRow("classifier", 2, 2, Decimal("0.1"), None)]
    assert json.loads(render(no_baseline, "component", Format.json))[0]["saving_usd"] is None
