"""The ledger's JSON text (`ledger.jsonb`, orjson) is stored as the standard library's text was:
the same JSONB value, byte for byte as Postgres gives it back, for every kind of value a stage
hands the ledger."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pinworks_common.ledger import jsonb

pytestmark = pytest.mark.integration

STORABLE: list[Any] = [
    None, True, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**30, 0.0, -0.0, 0.1 + 0.2,
    1e-7, 1e16, 1.5e300, 5e-324, 123456.789, "", "é ü ß 日本 \u2028 \u2029 🙂",
    "quote \" backslash \\ tab \t newline \n bell \x07 escape \x1b", [], {}, (1, "a", None),
    {"answer": "Your card is on its way.", "checks": [{"passed": True, "score": 0.91}],
     "passed_over": [{"rule": "a", "through": "b", "rules": 52}], "z": 1, "a": [1.0, 2]},
    {7: "int key", 2.5: "float key", False: "bool key", None: "none key"},
]


async def test_the_ledger_text_is_the_same_jsonb(migrated_database_url: str) -> None:
    url = make_url(migrated_database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        rows = await conn.fetch(
            "SELECT a::jsonb = b::jsonb AS same, a::jsonb::text AS ours, b::jsonb::text AS theirs "
            "FROM unnest($1::text[], $2::text[]) AS u(a, b)",
            [jsonb.text(value) for value in STORABLE], [json.dumps(value) for value in STORABLE])
    finally:
        await conn.close()
    assert len(rows) == len(STORABLE)
    for value, row in zip(STORABLE, rows, strict=True):
        assert row["same"] and row["ours"] == row["theirs"], value
