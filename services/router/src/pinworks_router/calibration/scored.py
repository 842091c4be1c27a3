"""Learn then Test with a learned family of per-intent thresholds (the default method).

Learn then Test (A. N. Angelopoulos, S. Bates, E. J. Candès, M. I. Jordan, L. Lei, "Learn then
Test: Calibrating predictive algorithms to achieve risk control", 2021, arXiv:2110.01052) splits
the calibration set: the learn part chooses a family of rules and the order of the hypotheses,
the test part tests them. Here:

- Split: a ticket is in part `a` when the first byte of SHA-256("<source>-<row>") is below
  `LEARN_BYTES` (half), else in part `b`; fixed before any data is seen. The shipped
  direction learns on `a` and tests on `b`; the swap (learn `b`, test `a`) is computed beside
  it as a check (cross-fitting).
- Learn: an estimate of P(wrong | intent, confidence) (`wrongness`: per intent where the data
  supports it, shrunk toward the pooled estimate) fitted on the learn part's automatic answers.
  The family, indexed by λ on the fixed grid `LAMBDA_GRID`: a ticket is answered automatically
  when its estimated wrong-probability is ≤ λ, i.e. when its confidence is above its intent's
  threshold h_intent(λ) (rounded up to the 0.001 grid; the rounded thresholds are what is tested
  and written).
- Test: H_λ "the wrong share of automatic answers at λ exceeds the budget" for λ from strict to
  loose with the exact binomial p-values of `ltt`, stopping at the first not rejected (fixed-
  sequence testing, no multiplicity spent on the grid). The sequence starts at the strictest λ
  whose learn-part automatic count, scaled to the test part's size, reaches `START_FACTOR` times
  `min_answers` (see `ltt`). The family, the order and the start depend on the learn part only,
  so the fixed-sequence test controls the family-wise error at δ = 1 − confidence with no further
  assumption than exchangeability of test and future tickets: with probability ≥ 1 − δ the
  chosen λ's wrong share is within budget. It is one family, so nothing is split across cells.
The printed bound is the one-sided Clopper–Pearson bound at the chosen λ on the test part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pinworks_router.calibration.cells import Routed
from pinworks_router.calibration.ltt import (
    START_FACTOR,
    Point,
    PValue,
    fixed_sequence,
    min_answers,
    upper_bound,
)
from pinworks_router.calibration.wrongness import WrongModel, fit

LAMBDA_GRID = tuple(10 ** (-5 + k / 200) for k in range(1001))
"""Fixed before seeing data: λ from 1e-5 to 1 (strict to loose), 200 steps a decade."""


class Answer(Protocol):
    """An automatic answer as the family sees it (`cells.Routed` is one)."""

    @property
    def intent(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def wrong(self) -> bool: ...


LEARN_BYTES = 128
"""A ticket is in part `a` when the first byte of its hash is below this (128: half)."""


def part_of(ticket_id: str) -> str:
    """`a` or `b`: the calibration ticket's part (its id is "<source>-<row>")."""
    return "a" if hashlib.sha256(ticket_id.encode()).digest()[0] < LEARN_BYTES else "b"


@dataclass(frozen=True)
class FamilyPoint(Point):
    """One λ of the family (`threshold` holds λ) and its grid index."""

    index: int = 0

    @property
    def max_wrong(self) -> float:
        return self.threshold


@dataclass(frozen=True)
class FamilyCertificate:
    learn: str
    """The part the model was fitted on; the other one tested it."""
    model: WrongModel
    points: tuple[FamilyPoint, ...]
    chosen: FamilyPoint | None
    max_rate: float
    delta: float
    start: int | None
    """Index in `LAMBDA_GRID` where the sequence started (None: the learn part never reaches
    enough automatic answers to start it)."""

    @property
    def bound(self) -> float:
        if self.chosen is None:
            return 1.0
        return upper_bound(self.chosen.wrong, self.chosen.answered, self.delta)

    def thresholds(self, intents: Sequence[str], index: int | None = None) -> dict[str, float]:
        """Each intent's gate at the chosen λ (or at grid `index`); 1.0 everywhere if none."""
        index = index if index is not None else (self.chosen.index if self.chosen else None)
        if index is None:
            return dict.fromkeys(intents, 1.0)
        return {i: self.model.threshold(i, LAMBDA_GRID[index]) for i in intents}


def _first_above(model: WrongModel, intent: str, confidence: float) -> int:
    """Binary search: h_intent(λ) does not rise as λ grows, so 'confidence > h' is monotone."""
    low, high = 0, len(LAMBDA_GRID)
    while low < high:
        mid = (low + high) // 2
        if confidence > model.threshold(intent, LAMBDA_GRID[mid]):
            high = mid
        else:
            low = mid + 1
    return low


def _cumulative(entries: Sequence[int], wrong: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Automatic answers and wrong ones at every grid index."""
    answered, errors = [0] * (len(LAMBDA_GRID) + 1), [0] * (len(LAMBDA_GRID) + 1)
    for entry, bad in zip(entries, wrong, strict=True):
        answered[entry] += 1
        errors[entry] += bad
    for k in range(1, len(answered)):
        answered[k] += answered[k - 1]
        errors[k] += errors[k - 1]
    return answered[:-1], errors[:-1]


def _start(model: WrongModel, learn: Sequence[Answer], test_size: int, needed: int) -> int | None:
    """The strictest λ whose learn-part automatic count, scaled to the test part, is `needed`."""
    if not learn:
        return None
    entries = [_first_above(model, r.intent, r.confidence) for r in learn]
    counts, _ = _cumulative(entries, [False] * len(entries))
    scale = test_size / len(learn)
    return next((k for k, n in enumerate(counts) if n * scale >= needed), None)


def certify_family(learn: Sequence[Answer], test: Sequence[Answer], max_rate: float, delta: float,
                   learn_name: str = "a", model: WrongModel | None = None,
                   method: PValue = PValue.binomial) -> FamilyCertificate:
    """Fit on `learn`'s automatic answers (unless `model` is given), then the fixed sequence on
    `test`'s. Both hold only the tickets the rest of the policy would answer automatically."""
    if model is None:
        model = fit([r.intent for r in learn], [r.confidence for r in learn],
                    [r.wrong for r in learn])
    start = _start(model, learn, len(test), START_FACTOR * min_answers(max_rate, delta))
    entries = [_first_above(model, r.intent, r.confidence) for r in test]
    answered, errors = _cumulative(entries, [r.wrong for r in test])
    steps = ((lam, answered[k], errors[k], start is not None and k >= start)
             for k, lam in enumerate(LAMBDA_GRID))
    tested, last = fixed_sequence(steps, max_rate, delta, method)
    points = [FamilyPoint(p.threshold, p.answered, p.wrong, p.p_value, p.tested, k)
              for k, p in enumerate(tested)]
    chosen = points[tested.index(last)] if last is not None else None
    return FamilyCertificate(learn_name, model, tuple(points), chosen, max_rate, delta, start)


def split(routed: Sequence[Routed]) -> dict[str, Sequence[Answer]]:
    """The automatic answers of each part (the family only gates those)."""
    parts: dict[str, list[Answer]] = {"a": [], "b": []}
    for r in routed:
        if r.automatic:
            parts[part_of(r.item.ticket.ticket_id)].append(r)
    return dict(parts)


def in_part(routed: Sequence[Routed], part: str) -> list[Routed]:
    """Every ticket of a part, automatic or not (for the figures)."""
    return [r for r in routed if part_of(r.item.ticket.ticket_id) == part]


def other(part: str) -> str:
    return "b" if part == "a" else "a"


def cross_fit(routed: Sequence[Routed], max_rate: float, delta: float,
              method: PValue = PValue.binomial, swap_routed: Sequence[Routed] | None = None
              ) -> tuple[FamilyCertificate, FamilyCertificate]:
    """The shipped direction (learn `a`, test `b`) and its swap (learn `b`, test `a`, on
    `swap_routed` when given)."""
    parts = split(routed)
    swap_parts = parts if swap_routed is None else split(swap_routed)
    shipped = certify_family(parts["a"], parts["b"], max_rate, delta, "a", method=method)
    swapped = certify_family(swap_parts["b"], swap_parts["a"], max_rate, delta, "b", method=method)
    return shipped, swapped


def automatic_under(cert: FamilyCertificate, routed: Sequence[Routed],
                    index: int | None = None) -> list[bool]:
    """Which of `routed` the policy answers automatically at the chosen λ (or grid `index`)."""
    index = index if index is not None else (cert.chosen.index if cert.chosen else None)
    if index is None:
        return [False] * len(routed)
    lam = LAMBDA_GRID[index]
    return [r.automatic and r.confidence > cert.model.threshold(r.intent, lam) for r in routed]

