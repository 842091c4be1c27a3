"""Personal data: found (`find`), redacted to typed placeholders (`redact`), and reduced to keyed
hashes (`keyed_hash`) where two records must be matched without keeping the data.

    text, findings = redact("Card 4111 1111 1111 1111, Jane Doe of Leeds")
    # text == "Card [CARD], [NAME] of [ADDRESS]"
    summary = [finding_summary(f, key) for f in findings]   # kind + keyed hash, never the text

Text sent to a model endpoint gets numbered placeholders instead (`Pseudonyms`: ``[CARD_1]``),
so the customer's own values can be put back in the reply. Text that reaches a log line or an
append-only audit column goes through `redact` first; the findings hold the original text and
are never stored as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from types import MappingProxyType

from pinworks_common.personal_data.detect import Finding, Kind, find, normalise, redact
from pinworks_common.personal_data.pseudonyms import PLACEHOLDER_RE, Pseudonyms, Restored

__all__ = ["NAME_FIELDS", "PLACEHOLDER_RE", "TIMESTAMP", "TRACE_ID", "Finding", "Kind", "Pseudonyms",
           "Redactor", "Restored", "find", "finding_summary", "keyed_hash", "known_names",
           "normalise", "redact", "redact_value"]

NAME_FIELDS = ("customer_name", "first_name", "last_name", "full_name", "name", "surname")
"""Ticket metadata fields that hold the customer's own name."""


def known_names(metadata: Mapping[str, object] | None) -> tuple[str, ...]:
    """The customer's names as the ticket's metadata gives them (each full name and its parts)."""
    names: list[str] = []
    for name in NAME_FIELDS:
        value = (metadata or {}).get(name)
        if isinstance(value, str) and value.strip():
            names += [value.strip(), *(part for part in value.split() if len(part) > 1)]
    return tuple(dict.fromkeys(names))


def keyed_hash(kind: Kind, value: str, key: bytes) -> str:
    """HMAC-SHA256 of the value's normal form under ``key`` (hex, 32 characters): the same card
    or e-mail address written two ways gives the same hash, and without the key no one can test a
    guess against it."""
    message = f"{kind.value}:{normalise(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def finding_summary(finding: Finding, key: bytes | None) -> dict[str, str]:
    """What may be stored of a finding: its kind, and its keyed hash when a key is configured."""
    summary = {"kind": finding.kind.value}
    if key:
        summary["hash"] = keyed_hash(finding.kind, finding.text, key)
    return summary


TRACE_ID = re.compile(r"[0-9a-f]{32}")
"""An OpenTelemetry trace id as the platform writes it (`format(trace_id, "032x")`)."""
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})")
"""A time as `datetime.isoformat()` or pydantic's JSON writes it: digits and separators only."""

_NO_FORMATS: Mapping[str, re.Pattern[str]] = MappingProxyType({})
_NOTHING_CLEAR: Mapping[str, object] = MappingProxyType({})


def redact_value(value: object, *, known_names: tuple[str, ...] = ()) -> object:
    """``value`` with every string in it redacted (dicts and lists walked; keys kept)."""
    return Redactor(known_names).json(value)[0]


class Redactor:
    """Redacts JSON values, each distinct string read once however often it recurs (a batch's
    rows repeat the same handler names, reasons and rules; a dictionary look-up is cheaper than
    the detector's own cache of findings). Keep one for a batch, never longer: it holds the
    texts it has read."""

    def __init__(self, known_names: tuple[str, ...] = ()) -> None:
        self.known_names = known_names
        self._texts: dict[str, str] = {}
        self._changed = False

    def json(self, value: object, formatted: Mapping[str, re.Pattern[str]] = _NO_FORMATS,
             clear: Mapping[str, object] = _NOTHING_CLEAR) -> tuple[object, bool]:
        """``value`` redacted as `redact_value` does, and whether redaction changed any string.

        `formatted` names the top-level keys of a JSON object the platform builds whose value
        it writes itself in one fixed format (a trace id, a time): a string wholly of its key's
        format is kept unread, as no sentence, name or e-mail address fits one (the phone
        matcher reads every run of 8 digits, so such values were most of an outcome's
        redaction); any other value of such a key, and every nested one, is read as before.
        `clear` gives top-level keys whose value the caller stores unredacted beside this one
        (a row's own ticket id column): a string equal to it is kept unread, as redacting a
        copy of a value kept in clear protects nothing; any other value is read as before."""
        self._changed = False
        if isinstance(value, dict) and (formatted or clear):
            redacted = {}
            for key, item in value.items():
                keep = False
                if isinstance(key, str) and isinstance(item, str):
                    form = formatted.get(key)
                    keep = (form is not None and form.fullmatch(item) is not None) or (
                        key in clear and clear[key] == item)
                redacted[key] = item if keep else self._walk(item)
            return redacted, self._changed
        return self._walk(value), self._changed

    def _walk(self, value: object) -> object:
        if isinstance(value, str):
            text = self._texts.get(value)
            if text is None:
                text = self._texts[value] = redact(value, known_names=self.known_names)[0]
            if text != value:
                self._changed = True
            return text
        if isinstance(value, dict):
            return {key: self._walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item) for item in value]
        return value
