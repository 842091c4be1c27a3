"""JSON column values encoded once: the text a statement sends is also where the ledger's copy
"as stored" comes from, so a value is written and read back in one pass each (orjson), not
dumped for the copy, dumped again for the statement and loaded in between.

orjson writes what the standard library wrote, as JSONB reads it (compact, UTF-8 instead of
``\\u`` escapes, floats in their shortest form), and its reading of its own text gives back the
same value. What orjson refuses (an integer past 64 bits, a key that is not a string, a lone
surrogate, a type outside JSON, a datetime, a dataclass or a subclass of a builtin) is encoded
by the standard library as before, with its errors and its conversions (an integer key becomes
its text), and read back by it too. Differences, each where the old encoding failed: a
non-finite float is written as ``null`` (pydantic's JSON mode already writes it so in every
value built from a model), where the old ``NaN`` token made Postgres refuse the statement; a
UUID is written as its text and an Enum member as its value, where the standard library
raised TypeError.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)
"""Types the standard library refused or wrote its own way go to it (orjson calls no default)."""


class JsonText(NamedTuple):
    """A JSON value's text as a statement sends it (a `Row` may hold one for a JSON column)."""

    text: str
    exact: bool
    """orjson wrote it, so orjson reads it back as it was."""

    def stored(self) -> Any:
        """The value as a JSON column gives it back (tuples become lists, and so on)."""
        return orjson.loads(self.text) if self.exact else json.loads(self.text)


def encode(value: Any) -> JsonText:
    if isinstance(value, JsonText):
        return value
    try:
        return JsonText(orjson.dumps(value, option=_STRICT).decode(), True)
    except orjson.JSONEncodeError:
        return JsonText(json.dumps(value), False)


def text(value: Any) -> str:
    """The JSON text a statement sends for `value` (None as ``null``, as SQLAlchemy's JSONB)."""
    return encode(value).text


def as_stored(value: Any) -> Any:
    """A JSON value as a JSON column gives it back."""
    return encode(value).stored()
