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
from collections.abc import Mapping

from pinworks_common.personal_data.detect import Finding, Kind, find, normalise, redact
from pinworks_common.personal_data.pseudonyms import PLACEHOLDER_RE, Pseudonyms, Restored

__all__ = ["NAME_FIELDS", "PLACEHOLDER_RE", "Finding", "Kind", "Pseudonyms", "Restored", "find",
           "finding_summary", "keyed_hash", "known_names", "normalise", "redact", "redact_value"]

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


def redact_value(value: object, *, known_names: tuple[str, ...] = ()) -> object:
    """``value`` with every string in it redacted (dicts and lists walked; keys kept)."""
    if isinstance(value, str):
        return redact(value, known_names=known_names)[0]
    if isinstance(value, dict):
        return {k: redact_value(v, known_names=known_names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, known_names=known_names) for v in value]
    return value
