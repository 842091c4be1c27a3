"""The verifier's second-opinion check in the calibration's simulation (`--second-opinion-margin`).

The verifier can check every draft against a second reader of the ticket (a complement naive
Bayes over word pairs, services/verifier; `VERIFIER_SECOND_OPINION=true`): it escalates the
answer to a person when that reader prefers another intent to the classified one by at least a
margin. `calibration/second_opinion.csv` beside predictions.csv holds that reader's gap for every
calibration ticket, read out of fold (services/verifier/eval/second_opinion_readings.py). With a
margin, an automatic answer whose gap reaches it goes to people, so the certified wrong share is
that of the automatic answers left after the verifier.

The guarantee needs the margin fixed before the test part is seen: either a number given on the
command line, or `learn`: chosen on the learn part alone, from the fixed grid `MARGIN_GRID`, as
the margin under which the scored method, run on the learn part split again in two (by the
second byte of the same hash), certifies the most in-scope automatic answers on the inner test
parts. The shipped direction chooses on part `a`, the swap on part `b`.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pinworks_router.calibration.cells import Routed
from pinworks_router.calibration.dataset import CalibrationTicket
from pinworks_router.calibration.ltt import PValue
from pinworks_router.calibration.scored import FamilyCertificate, automatic_under, certify_family

READINGS = Path("calibration") / "second_opinion.csv"
LEARN = "learn"
"""`--second-opinion-margin learn`: choose the margin on the learn part."""
OFF = math.inf
"""A margin no gap reaches: the check escalates nothing."""
MARGIN_GRID = (OFF, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25)
"""Candidates of `learn`, fixed before any data is seen, from no check to the strictest."""


def load_gaps(data_dir: Path, items: Sequence[CalibrationTicket]) -> dict[str, float]:
    """Each calibration ticket's gap, by ticket id; refused when a reading is missing or was made
    for another classified intent than predictions.csv's (a stale file)."""
    path = data_dir / READINGS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no second-opinion readings (write them with "
                                "services/verifier/eval/second_opinion_readings.py)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = {f"{r['source']}-{r['row']}": r for r in csv.DictReader(handle)}
    gaps = {}
    for item in items:
        ticket_id = item.ticket.ticket_id
        row = rows.get(ticket_id)
        if row is None or row["intent"] != item.classification.intent:
            raise ValueError(f"{path}: {'no reading' if row is None else 'a reading of another intent'}"
                             f" for {ticket_id}; write the readings again")
        gaps[ticket_id] = float(row["gap"])
    return gaps


def checked(routed: Sequence[Routed], gaps: Mapping[str, float], margin: float) -> list[Routed]:
    """The tickets after the verifier's check: an automatic answer whose gap reaches the margin
    goes to a person (who costs what economics charges a person)."""
    return [Routed(r.item, "human", Decimal(0))
            if r.automatic and gaps[r.item.ticket.ticket_id] >= margin else r for r in routed]


def inner_part_of(ticket_id: str) -> str:
    """The learn part split again, by the hash's second byte (independent of the first)."""
    return "a" if hashlib.sha256(ticket_id.encode()).digest()[1] < 128 else "b"


def _inner_coverage(part: Sequence[Routed], max_rate: float, delta: float, method: PValue) -> int:
    """In-scope automatic answers the scored method certifies on the inner test parts, both ways."""
    halves = {"a": [r for r in part if inner_part_of(r.item.ticket.ticket_id) == "a"],
              "b": [r for r in part if inner_part_of(r.item.ticket.ticket_id) == "b"]}
    total = 0
    for learn, test in (("a", "b"), ("b", "a")):
        cert: FamilyCertificate = certify_family([r for r in halves[learn] if r.automatic],
                                                 [r for r in halves[test] if r.automatic],
                                                 max_rate, delta, method=method)
        flags = automatic_under(cert, halves[test])
        total += sum(f and r.item.in_scope for r, f in zip(halves[test], flags, strict=True))
    return total


@dataclass(frozen=True)
class MarginChoice:
    margin: float
    inner_coverage: dict[float, int]
    """Certified in-scope automatic answers on the inner test parts, for every candidate."""


def choose_margin(learn_part: Sequence[Routed], gaps: Mapping[str, float], max_rate: float,
                  delta: float, method: PValue = PValue.binomial,
                  grid: Sequence[float] = MARGIN_GRID) -> MarginChoice:
    """The candidate of `grid` (loose to strict) whose check lets the learn part certify the
    most in-scope automatic answers (a tie keeps the looser: fewer right answers to people)."""
    coverage = {m: _inner_coverage(checked(learn_part, gaps, m), max_rate, delta, method)
                for m in grid}
    best = grid[0]
    for margin in grid:
        if coverage[margin] > coverage[best]:
            best = margin
    return MarginChoice(best, coverage)


@dataclass(frozen=True)
class CheckEffect:
    """What the check did to the automatic answers the policy (without the check) would give."""

    margin: float
    automatic: int
    wrong: int
    wrong_escalated: int
    right_escalated: int

    def as_dict(self) -> dict[str, object]:
        return {"margin": None if self.margin == OFF else self.margin,
                "automatic_before": self.automatic, "wrong_before": self.wrong,
                "wrong_escalated": self.wrong_escalated, "right_escalated": self.right_escalated}


def effect(routed: Sequence[Routed], gaps: Mapping[str, float], margin: float,
           include: Callable[[Routed], bool] = lambda _r: True) -> CheckEffect:
    """The check's catches and false alarms among `routed`'s automatic answers."""
    answers = [r for r in routed if r.automatic and include(r)]
    flagged = [r for r in answers if gaps[r.item.ticket.ticket_id] >= margin]
    return CheckEffect(margin, len(answers), sum(r.wrong for r in answers),
                       sum(r.wrong for r in flagged), sum(not r.wrong for r in flagged))
