"""The labelled set of support-ticket texts with marked personal data, and how redaction is
scored on it (see eval/README.md for how the set was built).

A ticket is stored marked up: ``⟦KIND|text⟧`` around every piece of personal data, KIND one of
pinworks_common.personal_data.Kind. Scoring is what redaction needs:

- recall of a kind: the share of its marked spans whose every letter and digit the detector
  redacted (by any kind of placeholder: a sort code redacted as a phone number is not leaked);
  a span redacted only in part counts as leaked;
- precision of a kind: the share of the detector's findings of that kind that touch a marked span
  (any kind), so over-redaction of order numbers, amounts or product names costs precision;
- typed recall: the share of marked spans covered by findings of their own kind.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pinworks_common.personal_data import Finding, Kind, find

EVAL_DIR = Path(__file__).resolve().parent / "eval"
FILES = ("generated.jsonl", "hand_written.jsonl")
MARK = re.compile(r"⟦([A-Z]+)\|(.*?)⟧", re.DOTALL)


@dataclass(frozen=True)
class Span:
    kind: Kind
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    id: str
    source: str
    text: str
    spans: tuple[Span, ...]


def split_of(example: Example) -> str:
    """``dev`` (what the detector may be tuned on) or ``test`` (reported, never tuned on), half
    each by a hash: of the template for a generated ticket, so no template's tickets are on both
    sides, and of the id for a hand-written one."""
    key = example.source if example.source.startswith("template") else example.id
    return "dev" if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


def unmark(marked: str) -> tuple[str, tuple[Span, ...]]:
    """The plain text and its spans from ``⟦KIND|text⟧`` markup."""
    parts: list[str] = []
    spans: list[Span] = []
    pos = length = 0
    for match in MARK.finditer(marked):
        parts.append(marked[pos:match.start()])
        length += match.start() - pos
        value = match.group(2)
        spans.append(Span(Kind(match.group(1)), length, length + len(value)))
        parts.append(value)
        length += len(value)
        pos = match.end()
    parts.append(marked[pos:])
    text = "".join(parts)
    if "⟦" in text or "⟧" in text:
        raise ValueError(f"unbalanced markup: {marked!r}")
    return text, tuple(spans)


def load(files: Iterable[str] = FILES, directory: Path = EVAL_DIR) -> list[Example]:
    examples: list[Example] = []
    for name in files:
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                text, spans = unmark(row["marked"])
                examples.append(Example(row["id"], row["source"], text, spans))
    return examples


def _covered(text: str, span: Span, findings: Sequence[Finding], *, kind: Kind | None = None
             ) -> bool:
    inside = [(f.start, f.end) for f in findings if kind is None or f.kind is kind]
    return all(any(s <= i < e for s, e in inside)
               for i in range(span.start, span.end) if text[i].isalnum())


@dataclass
class Tally:
    """Counts per kind: marked spans, those redacted whole, those redacted whole by their own
    kind; findings, and those that touch a marked span."""

    gold: Counter[Kind]
    redacted: Counter[Kind]
    typed: Counter[Kind]
    found: Counter[Kind]
    correct: Counter[Kind]

    @classmethod
    def empty(cls) -> Tally:
        return cls(Counter(), Counter(), Counter(), Counter(), Counter())

    def add(self, example: Example, findings: Sequence[Finding]) -> None:
        for span in example.spans:
            self.gold[span.kind] += 1
            self.redacted[span.kind] += _covered(example.text, span, findings)
            self.typed[span.kind] += _covered(example.text, span, findings, kind=span.kind)
        for finding in findings:
            self.found[finding.kind] += 1
            self.correct[finding.kind] += any(s.start < finding.end and finding.start < s.end
                                              for s in example.spans)

    def recall(self, kind: Kind | None = None) -> float:
        return _share(self.redacted, self.gold, kind)

    def typed_recall(self, kind: Kind | None = None) -> float:
        return _share(self.typed, self.gold, kind)

    def precision(self, kind: Kind | None = None) -> float:
        return _share(self.correct, self.found, kind)


def _share(part: Counter[Kind], whole: Counter[Kind], kind: Kind | None) -> float:
    numerator = part[kind] if kind else sum(part.values())
    denominator = whole[kind] if kind else sum(whole.values())
    return numerator / denominator if denominator else 1.0


def score(examples: Iterable[Example]) -> Tally:
    tally = Tally.empty()
    for example in examples:
        tally.add(example, find(example.text))
    return tally
