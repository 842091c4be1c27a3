"""The limits every message is decoded under: hostile JSON fails with a reason, never with
RecursionError or an int-digits ValueError, and what decodes is storable in Postgres."""

from __future__ import annotations

import json

import pytest

from pinworks_contracts.jsonlimits import (
    INTERNAL_LIMITS,
    SUBMISSION_LIMITS,
    JsonLimitError,
    loads_limited,
    nesting_depth,
    storable_text,
    top_level_strings,
)
from pinworks_contracts.messages import SubmissionError, parse_submission


def submission(**fields: object) -> dict[str, object]:
    return {"ticket_id": "T-1", "business_unit": "retail", "body": "my card is lost", **fields}


def raw(**fields: object) -> bytes:
    return json.dumps(submission(**fields)).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested 5000 levels deep"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "nested 2000 levels deep"),
        (b"9" * 5001, "number too long: 5001 characters"),
        (b"1e400", "number out of range: 1e400"),
        (b"-1e400", "number out of range"),
        (b"NaN", "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'"\\u0000"', "contains a NUL character"),
        (b'{"k\\u0000": 1}', "a key contains a NUL character"),
        (b'["\\ud800"]', "unpaired surrogate"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"a": 1, "a": 2}', 'duplicate key "a"'),
        (b'{"m": {"k": [], "k": {}}}', 'duplicate key "k"'),
    ],
)
def test_hostile_json_fails_with_the_limit_it_broke(payload: bytes, reason: str) -> None:
    with pytest.raises(JsonLimitError, match=None) as caught:
        loads_limited(payload, SUBMISSION_LIMITS)
    assert reason in str(caught.value)


def test_size_is_checked_before_anything_is_parsed() -> None:
    with pytest.raises(JsonLimitError, match="payload too large: 65537 bytes"):
        loads_limited(b" " * (64 * 1024 + 1), SUBMISSION_LIMITS)


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    decoded = loads_limited(br'{"body": "C:\\u0000 is a path"}', SUBMISSION_LIMITS)
    assert decoded == {"body": "C:\\u0000 is a path"}


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"body": "[" * 500 + '"{' * 300, "list": [[1]]})
    assert nesting_depth(text) == 3
    assert loads_limited(text.encode(), SUBMISSION_LIMITS)["list"] == [[1]]


def test_ordinary_json_round_trips_including_surrogate_pairs_and_big_but_sane_numbers() -> None:
    value = {"emoji": "\U0001f600", "n": 12345678901234567890, "f": 1.5e300, "neg": -0.0,
             "nested": {"a": [1, {"b": None}]}}
    assert loads_limited(json.dumps(value).encode(), SUBMISSION_LIMITS) == value
    assert loads_limited(b'"\\ud83d\\ude00"', SUBMISSION_LIMITS) == "\U0001f600"


def test_depth_limit_is_exact() -> None:
    at_limit = b"[" * SUBMISSION_LIMITS.max_depth + b"]" * SUBMISSION_LIMITS.max_depth
    assert loads_limited(at_limit, SUBMISSION_LIMITS) is not None
    with pytest.raises(JsonLimitError):
        loads_limited(b"[" + at_limit + b"]", SUBMISSION_LIMITS)


def test_an_accepted_submission_always_fits_the_internal_limits() -> None:
    assert INTERNAL_LIMITS.max_depth >= SUBMISSION_LIMITS.max_depth + 3
    assert INTERNAL_LIMITS.max_bytes >= 8 * SUBMISSION_LIMITS.max_bytes


def test_top_level_ids_are_read_from_payloads_that_cannot_be_decoded() -> None:
    payload = (b'{"metadata": {"ticket_id": "nested"}, "ticket_id": "T-9", '
               b'"business_unit": "retail", "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    assert top_level_strings(payload, frozenset({"ticket_id", "business_unit"})) == {
        "ticket_id": "T-9", "business_unit": "retail"}
    assert top_level_strings(b'{"ticket_id": "T\\u0000"}', frozenset({"ticket_id"})) == {}
    assert top_level_strings(b"\xff[[[", frozenset({"ticket_id"})) == {}


def test_an_unclosed_string_of_escaped_quotes_is_scanned_once() -> None:
    """Each quote inside must not start a fresh scan to the end (quadratic: minutes at 64 KiB)."""
    payload = b'{"ticket_id": "T-1", "m": ' + b"[" * 20 + b'"' + b'\\"' * 21_000
    with pytest.raises(JsonLimitError, match="nested 21 levels deep"):
        loads_limited(payload, SUBMISSION_LIMITS)
    assert top_level_strings(payload, frozenset({"ticket_id"})) == {"ticket_id": "T-1"}


def test_storable_text_escapes_what_postgres_text_refuses() -> None:
    assert storable_text("a\x00b\ud800") == "a\\u0000b\\ud800"
    assert storable_text("plain") == "plain"


@pytest.mark.parametrize(
    ("payload", "reason", "ticket_id", "unit"),
    [
        (raw(metadata={"x": "[" * 5}) [:-1] + b', "d": ' + b"[" * 1000 + b"]" * 1000 + b"}",
         "nested 1001 levels deep", "T-1", "retail"),
        (raw()[:-1] + b', "n": ' + b"7" * 5001 + b"}", "number too long", "T-1", "retail"),
        (raw(metadata={"score": float("nan")}), "NaN is not a JSON number", "T-1", "retail"),
        (raw(metadata={"score": float("inf")}), "Infinity is not a JSON number", "T-1", "retail"),
        (raw()[:-1] + b', "metadata": {"big": 1e400}}', "number out of range", "T-1", "retail"),
        (raw(business_unit="re\x00tail"), "business_unit: contains a NUL", "T-1", None),
        (raw(metadata={"k": {"deeper": ["\x00"]}}), "metadata.k.deeper[0]: contains a NUL",
         "T-1", "retail"),
        (raw(body="\ud83d broken pair"), "body: contains an unpaired surrogate", "T-1", "retail"),
        (raw(metadata=json.loads("[" * 20 + "]" * 20)), "nested 21 levels deep", "T-1", "retail"),
    ],
)
def test_hostile_submissions_are_rejected_with_reason_and_readable_ids(
    payload: bytes, reason: str, ticket_id: str | None, unit: str | None
) -> None:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(payload)
    assert any(reason in r for r in caught.value.reasons), caught.value.reasons
    assert caught.value.ticket_id == ticket_id
    assert caught.value.business_unit == unit
    assert all("\x00" not in r for r in caught.value.reasons)


def test_submission_with_literal_backslash_u0000_text_is_accepted() -> None:
    ticket = parse_submission(raw(body="my card shows \\u0000 in the app"))
    assert ticket.body == "my card shows \\u0000 in the app"


def test_raw_text_cannot_carry_what_only_an_escape_can() -> None:
    """Strings are walked only when the text has a \\u escape: a raw NUL or an encoded
    surrogate is refused before, by strict UTF-8 and strict JSON."""
    with pytest.raises(JsonLimitError, match="not valid JSON"):
        loads_limited(b'{"body": "a\x00b"}', INTERNAL_LIMITS)
    with pytest.raises(JsonLimitError, match="not valid UTF-8"):
        loads_limited(b'{"body": "a\xed\xa0\x80b"}', INTERNAL_LIMITS)
    with pytest.raises(JsonLimitError, match="body: contains a NUL"):
        loads_limited(b'{"body": "caf\xc3\xa9 \\u0000"}', INTERNAL_LIMITS)


def test_a_byte_order_mark_is_refused_as_json_loads_refuses_it() -> None:
    """The decoder is built once per limits; what `json.loads` checks before its decoder reads
    (a UTF-8 BOM) is still refused with the same message."""
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads("\ufeff{}")
    with pytest.raises(JsonLimitError) as refused:
        loads_limited("\ufeff{}".encode(), INTERNAL_LIMITS)
    assert str(refused.value) == f"payload is not valid JSON: {expected.value}"


def test_each_limits_decodes_with_its_own_number_length() -> None:
    from pinworks_contracts.jsonlimits import JsonLimits

    short, long = JsonLimits(1024, 8, max_number_chars=3), JsonLimits(1024, 8, 5)
    assert loads_limited(b"[12345]", long) == [12345]
    with pytest.raises(JsonLimitError, match="number too long: 5 characters, limit 3"):
        loads_limited(b"[12345]", short)
    assert loads_limited(b"[1.25]", long) == [1.25]
    with pytest.raises(JsonLimitError, match="number too long: 4 characters, limit 3"):
        loads_limited(b"[1.25]", short)


def _depth_token_by_token(text: str) -> int:
    """`nesting_depth` as it read every token in Python before #20: the reference."""
    from pinworks_contracts.jsonlimits import _TOKEN

    depth = deepest = 0
    for token in _TOKEN.finditer(text):
        if token.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token.group() in "]}":
            depth -= 1
    return deepest


@pytest.mark.parametrize("alphabet", ['[]{}"\\a:,\n', '[]{}"a:,', '[{"\\'])
def test_nesting_depth_is_the_token_by_token_depth(alphabet: str) -> None:
    """With and without backslashes (the pattern's and the split's reading of strings), over
    unbalanced, unterminated and escaped texts."""
    import random

    rng = random.Random(20)
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        assert nesting_depth(text) == _depth_token_by_token(text), repr(text)
    for text in ("[" * 5000 + "]" * 5000, '{"a":' * 2000 + "1" + "}" * 2000, '"\\"\\"' * 1000,
                 "]]]]", "", '"[[[', '["\\\\"]', '["\\"]"]', '{"k": "[[[", "v": [[]]}'):
        assert nesting_depth(text) == _depth_token_by_token(text), text[:40]
