"""A generated corpus of hostile and odd submissions, each with what the platform must do.

Every entry says whether the door must reject it (and then whether its ticket id is readable,
so a `rejected` outcome with a reason is owed) or accept it (odd but valid: it must flow to an
outcome like any ticket). Kinds cover what broke the platform before (deep nesting, huge
integers, NaN/Infinity/1e400, NUL characters, literal ``\\u0000`` text) and more: invalid UTF-8,
lone surrogates, oversized payloads, non-objects, wrong types, unreadable ids, duplicate keys.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Expectation = Literal["reject", "accept"]


@dataclass(frozen=True)
class HostilePayload:
    kind: str
    payload: bytes
    expect: Expectation
    ticket_id: str | None
    """The id a rejection must name (None when the payload's id cannot be read)."""


def _base(ticket_id: str, **fields: object) -> dict[str, object]:
    return {"ticket_id": ticket_id, "business_unit": "retail",
            "body": "My card was declined at the supermarket today.", **fields}


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _splice(ticket_id: str, raw_member: bytes) -> bytes:
    """A valid submission with one more member written as raw bytes (what json cannot dump)."""
    return _encode(_base(ticket_id))[:-1] + b", " + raw_member + b"}"


def _nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def _nested_object(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


Maker = Callable[[str, random.Random], tuple[bytes, Expectation, bool]]
"""(ticket id, rng) -> (payload, expectation, whether the id is readable)."""

KINDS: dict[str, Maker] = {
    "deep-array-member": lambda t, r: (
        _splice(t, b'"extra": ' + _nested(r.randint(17, 3000))), "reject", True),
    "deep-metadata": lambda t, r: (
        _splice(t, b'"metadata": ' + _nested_object(r.randint(16, 2000))), "reject", True),
    "deep-body": lambda t, r: (
        f'{{"ticket_id": "{t}", "business_unit": "retail", "body": '.encode()
        + _nested(r.randint(150, 990)) + b"}", "reject", True),
    "deep-unreadable": lambda t, r: (_nested(r.randint(1000, 20000)), "reject", False),
    "unclosed-escaped-quotes": lambda t, r: (
        f'{{"ticket_id": "{t}", "business_unit": "retail", "body": "x", "m": '.encode()
        + b"[" * 20 + b'"' + b'\\"' * r.randint(5_000, 21_000), "reject", True),
    "duplicate-keys": lambda t, r: (
        _splice(t, r.choice([f'"ticket_id": "{t}"', '"body": "other"',
                             '"metadata": {"a": 1, "a": 2}']).encode()), "reject", True),
    "huge-integer": lambda t, r: (
        _splice(t, b'"metadata": {"n": ' + b"9" * r.randint(4301, 6000) + b"}"), "reject", True),
    "long-float": lambda t, r: (
        _splice(t, b'"metadata": {"x": 0.' + b"1" * r.randint(41, 400) + b"}"), "reject", True),
    "nan": lambda t, r: (_encode(_base(t, metadata={"score": float("nan")})), "reject", True),
    "infinity": lambda t, r: (
        _encode(_base(t, metadata={"score": r.choice([1, -1]) * float("inf")})), "reject", True),
    "1e400": lambda t, r: (_splice(t, b'"metadata": {"amount": 1e400}'), "reject", True),
    "nul-business-unit": lambda t, r: (_encode(_base(t, business_unit="re\x00tail")), "reject",
                                       True),
    "nul-body": lambda t, r: (_encode(_base(t, body="card \x00 lost")), "reject", True),
    "nul-subject": lambda t, r: (_encode(_base(t, subject="\x00")), "reject", True),
    "nul-metadata-value": lambda t, r: (_encode(_base(t, metadata={"k": ["a\x00"]})), "reject",
                                        True),
    "nul-metadata-key": lambda t, r: (_encode(_base(t, metadata={"k\x00": 1})), "reject", True),
    "lone-surrogate": lambda t, r: (_encode(_base(t, body="broken \ud83d pair")), "reject",
                                    True),
    "invalid-utf8": lambda t, r: (
        _encode(_base(t))[:-2] + b"\xff\xfe\xc3(\"}", "reject", True),
    "oversized": lambda t, r: (
        _encode(_base(t, metadata={"blob": "x" * r.randint(65_600, 90_000)})), "reject", True),
    "not-json": lambda t, r: (r.choice([b"", b"{", b"null", b"ticket", b"\x00\x01\x02",
                                        b'{"ticket_id": ']), "reject", False),
    "not-an-object": lambda t, r: (r.choice([b"[1, 2]", b'"a string"', b"42", b"true"]),
                                   "reject", False),
    "wrong-types": lambda t, r: (
        _encode(_base(t, body=r.choice([12, None, [], {"a": 1}]))), "reject", True),
    "metadata-not-object": lambda t, r: (_encode(_base(t, metadata=[1, 2])), "reject", True),
    "missing-fields": lambda t, r: (_encode({"ticket_id": t}), "reject", True),
    "unreadable-id": lambda t, r: (
        _encode(_base(r.choice([t + " with spaces", "x" * 129, "", "é"]))), "reject", False),
    "id-not-a-string": lambda t, r: (_encode({**_base(t), "ticket_id": 12345}), "reject", False),
    "body-too-long": lambda t, r: (_encode(_base(t, body="a" * 20_001)), "reject", True),
    "literal-backslash-u0000": lambda t, r: (
        _encode(_base(t, body="The app shows \\u0000 and C:\\u0000\\ in my statement")),
        "accept", True),
    "brackets-in-text": lambda t, r: (
        _encode(_base(t, body="my card [[[[{{{{" * 50 + " was declined")), "accept", True),
    "metadata-at-depth-limit": lambda t, r: (
        _splice(t, b'"metadata": ' + _nested_object(14)), "accept", True),
    "large-sane-numbers": lambda t, r: (
        _splice(t, b'"metadata": {"n": 123456789012345678901234567890, "f": 1.5e300, '
                   b'"neg": -0.0}'), "accept", True),
    "unicode-and-controls": lambda t, r: (
        _encode(_base(t, body="Karte gesperrt \U0001f600 \u202e\u0007\t\r\n'; DROP TABLE "
                              "tickets; -- <script>alert(1)</script>")), "accept", True),
    "escaped-unicode": lambda t, r: (
        _encode(_base(t)).replace(b"declined", b"\\u0064\\u0065clined"), "accept", True),
}


def corpus(run_id: str, count: int, *, seed: int = 18) -> Iterator[HostilePayload]:
    """`count` payloads cycling through every kind, ids unique within the run."""
    rng = random.Random(seed)
    kinds = sorted(KINDS)
    for n in range(count):
        kind = kinds[n % len(kinds)]
        ticket_id = f"hostile-{run_id}-{n}"
        payload, expect, readable = KINDS[kind](ticket_id, rng)
        yield HostilePayload(kind, payload, expect, ticket_id if readable else None)
