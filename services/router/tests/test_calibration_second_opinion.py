"""The verifier's second-opinion check in the calibration: the guarantee still holds when the
check's margin is chosen on the learn part (synthetic data whose true after-check wrong share is
known in closed form), and `pinworks policy calibrate --second-opinion-margin` end to end."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from pathlib import Path

import pytest

from pinworks_contracts.messages import Classification, TicketSubmission
from pinworks_router.calibration.cells import Routed
from pinworks_router.calibration.command import Method, calibrate, parse_margin
from pinworks_router.calibration.dataset import CalibrationTicket
from pinworks_router.calibration.scored import certify_family
from pinworks_router.calibration.second_opinion import (
    OFF,
    READINGS,
    checked,
    choose_margin,
    load_gaps,
)
from pinworks_router.calibration.synthetic import (
    RIGHT_GAP,
    WRONG_GAP,
    synthetic_gap,
    write_synthetic_set,
)

# intent -> (share of tickets, wrong_at): P(wrong | confidence c) = wrong_at * (1 - c), c uniform
INTENTS = {"easy": (0.6, 0.01), "medium": (0.3, 0.05), "confusable": (0.1, 0.3)}
GRID = (OFF, 1.0)


def _draw(rng: random.Random, n: int, start: int) -> tuple[list[Routed], dict[str, float]]:
    names = list(INTENTS)
    routed, gaps = [], {}
    for k, intent in enumerate(rng.choices(names, [INTENTS[i][0] for i in names], k=n)):
        confidence = rng.random()
        wrong = rng.random() < INTENTS[intent][1] * (1 - confidence)
        ticket = TicketSubmission(ticket_id=f"synthetic-{start + k}", business_unit="u", body="x")
        item = CalibrationTicket(ticket, Classification(
            intent=intent, confidence=confidence, alternatives=[], out_of_scope=False,
            model_version="m"), "other" if wrong else intent, "synthetic")
        routed.append(Routed(item, "template", Decimal(0)))
        gaps[ticket.ticket_id] = synthetic_gap(rng, wrong)
    return routed, gaps


def true_risk(thresholds: dict[str, float], margin: float) -> tuple[float, float]:
    """Exact wrong share of the automatic answers left after the check, and their share."""
    keep_wrong = 1 - 0.5 * math.exp(-margin / WRONG_GAP)
    keep_right = 1 - 0.1 * math.exp(-margin / RIGHT_GAP)
    wrong = right = 0.0
    for intent, (share, w) in INTENTS.items():
        above = 1 - thresholds[intent]
        wrong += share * w * above**2 / 2 * keep_wrong
        right += share * (above - w * above**2 / 2) * keep_right
    answered = wrong + right
    return (wrong / answered if answered else 0.0), answered


def test_a_margin_chosen_on_the_learn_part_keeps_the_guarantee() -> None:
    rng = random.Random(23)
    budget, delta, draws = 0.01, 0.1, 24
    violations, certified, checked_draws = 0, 0, 0
    for draw in range(draws):
        learn, learn_gaps = _draw(rng, 3000, 0)
        test, test_gaps = _draw(rng, 3000, 3000)
        gaps = {**learn_gaps, **test_gaps}
        choice = choose_margin(learn, gaps, budget, delta, grid=GRID)  # the learn part only
        assert set(choice.inner_coverage) == set(GRID)
        cert = certify_family(checked(learn, gaps, choice.margin), checked(test, gaps, choice.margin),
                              budget, delta)
        if cert.chosen is None:
            continue
        certified += 1
        checked_draws += choice.margin != OFF
        risk, _answered = true_risk(cert.thresholds(list(INTENTS)), choice.margin)
        violations += risk > budget
        assert cert.bound <= budget, draw
    assert violations / draws <= delta + 3 * math.sqrt(delta * (1 - delta) / draws)
    # not trivially strict: most draws certify, and most choose the check (it catches errors)
    assert certified >= 0.8 * draws and checked_draws >= 0.6 * certified


def test_the_check_sends_only_automatic_answers_at_or_past_the_margin_to_people() -> None:
    routed, gaps = _draw(random.Random(1), 200, 0)
    routed[0] = Routed(routed[0].item, "human", Decimal(0))
    after = checked(routed, gaps, 0.5)
    for before, now in zip(routed, after, strict=True):
        gap = gaps[before.item.ticket.ticket_id]
        assert now.automatic == (before.automatic and gap < 0.5)
        assert now.cost == (before.cost if now.automatic else Decimal(0))
    assert checked(routed, gaps, OFF) == routed


def test_the_margin_option_is_a_positive_number_or_learn() -> None:
    assert parse_margin(None) is None and parse_margin("learn") == "learn"
    assert parse_margin("0.57") == 0.57
    for bad in ("0", "-1", "often"):
        with pytest.raises(ValueError, match="second-opinion-margin"):
            parse_margin(bad)


def test_calibrate_with_the_check_writes_a_policy_that_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_set(data, [("card_arrival", 5000), ("age_limit", 5000)], out_of_scope=500,
                        wrong_at=0.04, second_opinion=True)
    result = calibrate(tmp_path / "checked.yaml", data_dir=data, second_opinion_margin="learn")
    run = result.second_opinion
    assert run is not None and run.without is not None and result.family is not None
    assert set(run.choices) == {"a", "b"}
    assert run.margin == run.choices["a"].margin and run.swap_margin == run.choices["b"].margin
    assert run.margin != OFF  # it catches half the errors here, so it pays
    assert run.written_effect.wrong_escalated > 0 and run.written_effect.right_escalated > 0
    assert f"VERIFIER_SECOND_OPINION_MARGIN={run.margin:g}" in (tmp_path / "checked.yaml").read_text()
    assert result.family.shipped.bound <= 0.01 and result.measured.wrong_rate <= 0.01
    assert run.without.cross_fitted.tickets == result.family.cross_fitted.tickets

    fixed = calibrate(tmp_path / "cells.yaml", data_dir=data, method=Method.cells,
                      second_opinion_margin=1.0)
    assert fixed.second_opinion is not None and fixed.second_opinion.margin == 1.0
    with pytest.raises(ValueError, match="needs --method scored"):
        calibrate(tmp_path / "x.yaml", data_dir=data, method=Method.cells,
                  second_opinion_margin="learn")
    assert "VERIFIER_SECOND_OPINION_MARGIN=1," in (tmp_path / "cells.yaml").read_text()


def test_stale_or_missing_readings_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_set(data, [("card_arrival", 50), ("age_limit", 50)], second_opinion=True)
    readings = data / READINGS
    lines = readings.read_text().splitlines()
    source, row, intent, *rest = lines[1].split(",")
    other = "age_limit" if intent == "card_arrival" else "card_arrival"
    readings.write_text("\n".join([lines[0], ",".join([source, row, other, *rest]), *lines[2:]]))
    with pytest.raises(ValueError, match="another intent"):
        calibrate(tmp_path / "x.yaml", data_dir=data, second_opinion_margin=1.0,
                  max_wrong_rate=0.5)
    readings.unlink()
    with pytest.raises(FileNotFoundError, match="second_opinion_readings.py"):
        load_gaps(data, [])
