"""The detector gives, text for text, the findings recorded in
tools/personal_data/eval/detector_reference.jsonl.gz (tools/personal_data/record_reference.py):
the labelled set with and without known names, the answer templates, help-centre paragraphs,
the bench's tickets, log lines and 3,000 seeded generated strings. A faster detector must find
the same spans of the same kinds; a change meant to alter findings records the file again."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pinworks_common.personal_data import Kind, detect, find, numbers, redact, scan

REFERENCE = Path(__file__).resolve().parents[1] / "personal_data" / "eval" / "detector_reference.jsonl.gz"


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    with gzip.open(REFERENCE, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def test_the_reference_covers_every_kind_and_thousands_of_texts(reference: list[dict[str, Any]]) -> None:
    kinds = Counter(kind for row in reference for kind, _, _ in row["findings"])
    assert len(reference) >= 4000 and set(kinds) == {k.value for k in Kind}
    assert min(kinds.values()) >= 100, kinds
    assert sum(1 for row in reference if not row["findings"]) >= 500


@pytest.mark.parametrize(("direct_chars", "phone_tries"), [
    (scan.DIRECT_CHARS, numbers._PHONE_TRIES),
    (0, numbers._PHONE_TRIES),      # every cue pattern tried only where its words occur
    (10**9, 0),                     # every pattern tried everywhere, the phone matcher on whole texts
], ids=["shipped", "word-starts", "everywhere"])
def test_every_text_gives_its_recorded_findings(reference: list[dict[str, Any]],
                                                monkeypatch: pytest.MonkeyPatch, direct_chars: int,
                                                phone_tries: int) -> None:
    monkeypatch.setattr(scan, "DIRECT_CHARS", direct_chars)
    monkeypatch.setattr(numbers, "_PHONE_TRIES", phone_tries)
    detect._find_cached.cache_clear()
    differ = []
    for row in reference:
        found = find(row["text"], known_names=row["known"], regions=row["regions"])
        if [[f.kind.value, f.start, f.end] for f in found] != row["findings"]:
            differ.append((row["text"], row["findings"], [(f.kind.value, f.start, f.end) for f in found]))
    detect._find_cached.cache_clear()
    assert not differ, f"{len(differ)} texts differ, first: {differ[:3]}"


def test_findings_hold_their_own_text_and_redact_replaces_exactly_them(
        reference: list[dict[str, Any]]) -> None:
    for row in reference[::7]:
        text = row["text"]
        redacted, findings = redact(text, known_names=row["known"], regions=row["regions"])
        assert all(f.text == text[f.start:f.end] for f in findings)
        assert len(redacted) == len(text) + sum(len(f.kind.placeholder) - (f.end - f.start) for f in findings)
