"""The scored method: the learned estimate, the split, and the guarantee on synthetic data
whose true wrong-answer rate is known in closed form."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from pinworks_router.calibration.scored import LAMBDA_GRID, certify_family, part_of
from pinworks_router.calibration.wrongness import fit

# intent -> (share of tickets, wrong_at): P(wrong | confidence c) = wrong_at * (1 - c), c uniform
INTENTS = {"easy": (0.6, 0.01), "medium": (0.3, 0.05), "confusable": (0.1, 0.3)}


@dataclass(frozen=True)
class Answer:
    intent: str
    confidence: float
    wrong: bool


def _draw(rng: random.Random, n: int) -> list[Answer]:
    names = list(INTENTS)
    weights = [INTENTS[i][0] for i in names]
    out = []
    for intent in rng.choices(names, weights, k=n):
        confidence = rng.random()
        out.append(Answer(intent, confidence, rng.random() < INTENTS[intent][1] * (1 - confidence)))
    return out


def true_risk(thresholds: dict[str, float]) -> tuple[float, float]:
    """Exact wrong share of automatic answers and automatic share, gates `thresholds`."""
    answered = sum(share * (1 - thresholds[i]) for i, (share, _w) in INTENTS.items())
    wrong = sum(share * w * (1 - thresholds[i]) ** 2 / 2 for i, (share, w) in INTENTS.items())
    return (wrong / answered if answered else 0.0), answered


def test_the_split_is_fixed_and_even() -> None:
    ids = [f"banking77_train-{row}" for row in range(4000)]
    assert [part_of(i) for i in ids] == [part_of(i) for i in ids]
    assert 0.46 < sum(part_of(i) == "a" for i in ids) / len(ids) < 0.54


def test_the_estimate_orders_intents_by_their_error_rate_and_shrinks_small_ones() -> None:
    answers = _draw(random.Random(5), 20_000) + [Answer("rare", 0.9, True)]
    model = fit([a.intent for a in answers], [a.confidence for a in answers],
                [a.wrong for a in answers])
    assert model.slope < 0
    at = {i: model.probability(i, 0.8) for i in (*INTENTS, "rare")}
    assert at["easy"] < at["medium"] < at["confusable"]
    assert at["confusable"] == pytest.approx(0.3 * 0.2, rel=0.5)
    assert abs(model.offsets["rare"]) < 1.0  # one wrong ticket: pulled toward the pool
    assert model.probability("never-seen", 0.8) == model.probability("", 0.8)
    for intent in INTENTS:
        gates = [model.threshold(intent, lam) for lam in LAMBDA_GRID]
        assert gates == sorted(gates, reverse=True)  # looser λ, lower (or equal) thresholds
        assert all(round(g * 1000) == pytest.approx(g * 1000) for g in gates)


def test_the_chosen_family_member_honours_the_budget_in_all_but_delta_of_draws() -> None:
    rng = random.Random(17)
    budget, delta, draws = 0.01, 0.1, 60
    violations, coverage = 0, []
    for _ in range(draws):
        cert = certify_family(_draw(rng, 3000), _draw(rng, 3000), budget, delta)
        if cert.chosen is None:
            continue
        risk, answered = true_risk(cert.thresholds(list(INTENTS)))
        violations += risk > budget
        coverage.append(answered)
        assert cert.bound <= budget
    assert violations / draws <= delta + 3 * math.sqrt(delta * (1 - delta) / draws)
    # not trivially strict: most draws certify, and the confusable intent is held back hardest
    assert len(coverage) >= 0.8 * draws
    assert sum(coverage) / len(coverage) > 0.5


def test_per_intent_thresholds_answer_more_than_one_shared_threshold() -> None:
    cert = certify_family(_draw(random.Random(2), 20_000), _draw(random.Random(3), 20_000),
                          0.01, 0.05)
    assert cert.chosen is not None
    gates = cert.thresholds(list(INTENTS))
    assert gates["easy"] < gates["medium"] < gates["confusable"]
    risk, answered = true_risk(gates)
    assert risk <= 0.01
    # the best single threshold at the same true risk: solve over a fine grid
    shared = max(1 - h / 1000 for h in range(1001)
                 if true_risk(dict.fromkeys(INTENTS, h / 1000))[0] <= 0.01)
    assert answered > shared


def test_it_refuses_when_nothing_can_be_certified() -> None:
    rng = random.Random(9)
    noisy = [Answer(a.intent, a.confidence, rng.random() < 0.05) for a in _draw(rng, 6000)]
    cert = certify_family(noisy[:3000], noisy[3000:], 0.01, 0.05)  # 5% wrong everywhere
    assert cert.chosen is None and cert.bound == 1.0
    assert cert.thresholds(["easy"]) == {"easy": 1.0}
    tested = [p for p in cert.points if p.tested]
    assert len(tested) == 1 and tested[0].p_value > 0.05  # the first fails: the end
    few = certify_family(_draw(rng, 100), _draw(rng, 100), 0.01, 0.05)
    assert few.start is None and few.chosen is None and not any(p.tested for p in few.points)
