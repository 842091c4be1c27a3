"""JSON column values encoded once (`ledger.jsonb`): the copy "as stored" is what the standard
library's round trip gave, for every kind of value a stage hands the ledger, and a value
already encoded goes to the statement as it is."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest

from pinworks_common.ledger import jsonb, statements

VALUES: list[Any] = [
    None, True, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**30,
    0.0, -0.0, 0.1 + 0.2, 1e-7, 1e16, 1.5e300, 5e-324, "", "plain", "é ü ß 日本 \u2028 \u2029",
    "quote \" backslash \\ tab \t newline \n bell \x07", "\x00 nul", "🙂 astral",
    [], {}, (1, "a", None), [[1, [2, [3]]], {"a": {"b": {"c": []}}}],
    {"answer": "Your card is on its way.", "checks": [{"passed": True, "score": 0.91}]},
    {7: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"big": 2**70, "nested": [2**65]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_stored_copy_is_the_standard_round_trip(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    stored = jsonb.as_stored(value)
    assert stored == expected
    assert type(stored) is type(expected)
    assert json.loads(jsonb.text(value)) == expected  # the statement's text reads the same
    if isinstance(value, float) and not math.isnan(value):
        assert math.copysign(1, stored) == math.copysign(1, value)  # -0.0 stays negative


@pytest.mark.parametrize("value", [{1: "a"}, 2**64, {"n": -(2**63) - 1}, "\ud800 lone"],
                         ids=repr)
def test_what_orjson_refuses_goes_through_the_standard_library(value: Any) -> None:
    encoded = jsonb.encode(value)
    assert not encoded.exact
    assert encoded.text == json.dumps(value)


class Colour(Enum):
    RED = 1


@dataclass
class Point:
    x: int


# a fixed datetime: the ids are the values' reprs, and pytest-xdist's workers must collect the same
@pytest.mark.parametrize("value", [datetime(2026, 12, 7, 14, 50, tzinfo=UTC), Decimal("1.5"), Point(1),
                                   {"at": {1j}}, Colour.RED], ids=repr)
def test_a_type_outside_json_is_refused_as_before(value: Any) -> None:
    if isinstance(value, Colour):  # orjson writes an Enum's value; the standard library refused
        assert jsonb.text(value) == "1"
        return
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsonb.encode(value)


def test_a_uuid_refused_before_is_written_as_its_text() -> None:
    value = {"id": UUID(int=1)}
    with pytest.raises(TypeError):
        json.dumps(value)
    assert jsonb.text(value) == '{"id":"00000000-0000-0000-0000-000000000001"}'


def test_a_non_finite_float_is_written_as_null() -> None:
    assert jsonb.text({"score": math.nan, "inf": math.inf}) == '{"score":null,"inf":null}'


def test_an_encoded_value_is_sent_as_encoded() -> None:
    encoded = jsonb.encode({"handler": "kb", "rules": (1, 2)})
    assert jsonb.encode(encoded) is encoded
    [inputs, output] = statements.arrays(
        "decisions", ("inputs", "output"), [{"inputs": {"n": 1}, "output": encoded}])
    assert inputs == ['{"n":1}'] and output == [encoded.text]
    assert encoded.stored() == {"handler": "kb", "rules": [1, 2]}
