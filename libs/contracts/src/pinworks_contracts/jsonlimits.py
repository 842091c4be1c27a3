"""JSON decoding under limits pinworks chooses, for every message a stage reads.

Python's `json.loads` fails on its own terms on hostile input (RecursionError past ~1,000
levels, ValueError past 4,300 integer digits) and accepts what Postgres refuses later (NaN,
Infinity, 1e400 that becomes inf, NUL characters, lone surrogates) or what other parsers read
differently (a key given twice). Decoding here checks size,
nesting depth, number length and range, and string content first, so every payload either
decodes into values that every later hop and Postgres `jsonb` accept, or fails with one
`JsonLimitError` naming the limit. The check is linear in the payload and never recurses on
untrusted structure.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_SUBMISSION_BYTES = 64 * 1024
MAX_SUBMISSION_DEPTH = 16
MAX_INTERNAL_BYTES = 1024 * 1024
MAX_INTERNAL_DEPTH = 32
MAX_NUMBER_CHARS = 40

_STRING = r'"(?:[^"\\]++|\\.)*+"'
_STRING_OR_REST = r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)'
"""A string, or an unterminated one running to the end: every quote opens a match that ends
the scan of its text, so no text is scanned twice (linear even for `"\\"\\"...` unclosed)."""
_TOKEN = re.compile(_STRING_OR_REST + r"|[\[\]{}:,]", re.DOTALL)
_STRING_ONLY = re.compile(_STRING, re.DOTALL)
_STRING_OR_REST_RE = re.compile(_STRING_OR_REST, re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class JsonLimits:
    """How big and how deep a message may be; numbers are at most `max_number_chars` long."""

    max_bytes: int
    max_depth: int
    max_number_chars: int = MAX_NUMBER_CHARS


SUBMISSION_LIMITS = JsonLimits(MAX_SUBMISSION_BYTES, MAX_SUBMISSION_DEPTH)
"""A ticket on `tickets.submitted`: the public contract's limits."""

INTERNAL_LIMITS = JsonLimits(MAX_INTERNAL_BYTES, MAX_INTERNAL_DEPTH)
"""Messages between stages: an accepted ticket (depth <= 16, <= 64 KiB) wrapped in an envelope
always fits, so nothing the door accepted is refused at a later hop."""


class JsonLimitError(ValueError):
    """A payload outside the limits, or not JSON at all; the message says which."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings not counted.

    What lies outside the strings `_TOKEN` reads is kept (each quote outside a string opens
    one, running to its closing quote or the end: without a backslash, every other piece
    between quotes), and the depth after each of its brackets is summed by
    `itertools.accumulate`: no Python code runs per token."""
    outside = (_STRING_OR_REST_RE.sub("", text) if "\\" in text
               else "".join(text.split('"')[::2]))
    brackets = _NOT_A_BRACKET.sub("", outside)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=0))


@functools.lru_cache(maxsize=16)
def _decoder(limits: JsonLimits) -> json.JSONDecoder:
    """The decoder of `limits`, built once (`json.loads` with hooks builds one per call)."""

    def check_length(literal: str) -> None:
        if len(literal) > limits.max_number_chars:
            raise JsonLimitError(f"number too long: {len(literal)} characters, "
                                 f"limit {limits.max_number_chars}")

    def parse_int(literal: str) -> int:
        check_length(literal)
        return int(literal)

    def parse_float(literal: str) -> float:
        check_length(literal)
        value = float(literal)
        if not math.isfinite(value):
            raise JsonLimitError(f"number out of range: {literal}")
        return value

    def parse_constant(literal: str) -> float:
        raise JsonLimitError(f"{literal} is not a JSON number")

    return json.JSONDecoder(parse_int=parse_int, parse_float=parse_float,
                            parse_constant=parse_constant, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object naming a key twice is ambiguous (parsers differ on which one wins): refused."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonLimitError(f"duplicate key {json.dumps(key)[:100]}")
            seen.add(key)
    return value


def unstorable_character(value: str) -> str | None:
    """Why Postgres cannot store this text (a NUL, or half of a surrogate pair), if it cannot."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which text cannot hold"
    return f"contains an unpaired surrogate (\\u{ord(found.group()):04x}), which is not valid Unicode"


def _where(path: str) -> str:
    return (path if len(path) <= 200 else f"{path[:200]}...") or "payload"


def _check_strings(value: Any, path: str) -> None:
    """Every key and string value must be storable; depth is already bounded, so recursion is."""
    if isinstance(value, str):
        problem = unstorable_character(value)
        if problem:
            raise JsonLimitError(f"{_where(path)}: {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable_character(key)
            if problem:
                raise JsonLimitError(f"{_where(path)}: a key {problem}")
            _check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]")


def loads_limited(payload: bytes, limits: JsonLimits) -> Any:
    """Decode `payload` or raise `JsonLimitError`; what it returns Postgres `jsonb` accepts.

    Strict UTF-8 decoding refuses an encoded surrogate and strict JSON a raw control character
    inside a string, so a text without a `\\u` escape holds no unstorable string and its strings
    need no walk (every payload pydantic writes between stages, unless it carries a control
    character)."""
    if len(payload) > limits.max_bytes:
        raise JsonLimitError(f"payload too large: {len(payload)} bytes, limit {limits.max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonLimitError(f"payload is not valid UTF-8 (byte {error.start})") from None
    openings = text.count("[") + text.count("{")
    depth = nesting_depth(text) if openings > limits.max_depth else openings
    if depth > limits.max_depth:
        raise JsonLimitError(f"payload nested {depth} levels deep, limit {limits.max_depth}")
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before its decoder reads
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _decoder(limits).decode(text)
    except json.JSONDecodeError as error:
        raise JsonLimitError(f"payload is not valid JSON: {error}") from None
    if "\\u" in text:  # only a \u escape can decode to a NUL or a lone surrogate
        _check_strings(value, "")
    return value


def check_limits(payload: bytes, limits: JsonLimits) -> None:
    """Raise `JsonLimitError` unless `payload` decodes within `limits`."""
    loads_limited(payload, limits)


def top_level_strings(payload: bytes, keys: frozenset[str]) -> dict[str, str]:
    """Read string members of the top-level object from any payload, however malformed
    elsewhere: what a rejection can still say about whose ticket it was."""
    text = payload.decode("utf-8", errors="replace")
    found: dict[str, str] = {}
    depth = 0
    tokens = list(_TOKEN.finditer(text)) if len(text) <= 4 * MAX_INTERNAL_BYTES else []
    for index, token in enumerate(tokens):
        literal = token.group()
        if literal in "[{":
            depth += 1
        elif literal in "]}":
            depth -= 1
        elif (depth == 1 and literal.startswith('"') and index + 2 < len(tokens)
              and tokens[index + 1].group() == ":" and text[tokens[index + 1].end():].lstrip()
              .startswith('"') and (index == 0 or tokens[index - 1].group() in "{,")):
            key = _string_value(literal)
            if key in keys and key not in found:
                value = _string_value(tokens[index + 2].group())
                if value is not None:
                    found[key] = value
    return found


def _string_value(literal: str) -> str | None:
    if not _STRING_ONLY.fullmatch(literal):
        return None
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) and unstorable_character(value) is None else None


def storable_text(value: str) -> str:
    """`value` with NULs and unpaired surrogates escaped, so a text column accepts it."""
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", value)
