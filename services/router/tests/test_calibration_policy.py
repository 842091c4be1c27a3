"""The error budget in the policy, and `calibrate` deriving and writing its thresholds."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pinworks_common.pricing import agent_cost_usd, classifier_cost_usd
from pinworks_router.calibration.cells import min_support
from pinworks_router.calibration.command import CalibrationRefused, Method, calibrate
from pinworks_router.calibration.dataset import load_calibration_set
from pinworks_router.calibration.report import as_dict, render
from pinworks_router.calibration.synthetic import write_synthetic_set
from pinworks_router.domain import route
from pinworks_router.policy import PolicyError, load_policy, parse_policy

BASE = """\
description: test policy
intent_groups:
  cards: [card_arrival]
error_budget: {max_wrong_rate: 0.01, confidence: 0.95}
rules:
  - name: oos-person
    when: {out_of_scope: true}
    handler: human
  - name: confident-template
    when: {min_confidence: 0.3}
    handler: template
    fallbacks: [human]
  - name: rest-person
    handler: human
"""


def test_error_budget_is_optional_and_parsed_with_overrides() -> None:
    assert parse_policy("rules:\n  - {name: a, handler: human}\n").error_budget is None
    policy = parse_policy(BASE.replace(
        "error_budget: {max_wrong_rate: 0.01, confidence: 0.95}",
        "error_budget:\n  max_wrong_rate: 0.01\n  business_units: {wealth: {max_wrong_rate: 0.005}}"
        "\n  intent_groups: {cards: {max_wrong_rate: 0.002, confidence: 0.99}}"))
    assert policy.error_budget is not None
    assert policy.error_budget.confidence == 0.95
    assert policy.error_budget.business_units["wealth"].max_wrong_rate == 0.005
    assert policy.error_budget.intent_groups["cards"].confidence == 0.99
    assert policy.version != parse_policy(BASE).version  # the budget is part of the version


@pytest.mark.parametrize(("budget", "message"), [
    ("{max_wrong_rate: 1.5}", "max_wrong_rate"),
    ("{max_wrong_rate: 0.01, confidence: 1}", "confidence"),
    ("{max_wrong_rate: 0.01, business_units: {w: {max_wrong_rate: 0.02}}}", "looser"),
    ("{max_wrong_rate: 0.01, intent_groups: {nope: {max_wrong_rate: 0.005}}}", "unknown intent group"),
    ("{max_wrong_rate: 0.01, colour: red}", "colour"),
])
def test_a_broken_error_budget_is_refused_with_its_line(budget: str, message: str) -> None:
    text = BASE.replace("{max_wrong_rate: 0.01, confidence: 0.95}", budget)
    with pytest.raises(PolicyError, match=message) as info:
        parse_policy(text, "p.yaml")
    assert "p.yaml line 4" in str(info.value)


def test_the_shipped_policy_has_a_budget_and_routes_as_before() -> None:
    policy = load_policy()
    assert policy.error_budget is not None and policy.error_budget.max_wrong_rate == 0.01
    assert [r.name for r in policy.rules][0] == "out-of-scope-to-person"


def test_agent_cost_is_the_escalation_services_setting() -> None:
    assert agent_cost_usd({}) == Decimal("1.50")
    assert agent_cost_usd({"PINWORKS_AGENT_COST_USD": "4.25"}) == Decimal("4.25")
    for wrong in ("-1", "inf", "NaN", "one fifty"):
        with pytest.raises(ValueError, match="PINWORKS_AGENT_COST_USD"):
            agent_cost_usd({"PINWORKS_AGENT_COST_USD": wrong})


def test_calibration_prices_the_classifier_as_the_classifier_charges() -> None:
    from pinworks_common.pricing import DEFAULT_CLASSIFIER_COST
    from pinworks_router.calibration.economics import Charges, cost_per_ticket

    # the classifier's setting (ClassifierSettings.cost_per_ticket_usd) has the same default
    assert classifier_cost_usd({}) == DEFAULT_CLASSIFIER_COST == Decimal("0.00002")
    assert classifier_cost_usd({"CLASSIFIER_COST_USD": "0.0001"}) == Decimal("0.0001")
    with pytest.raises(ValueError, match="CLASSIFIER_COST_USD"):
        classifier_cost_usd({"CLASSIFIER_COST_USD": "-1"})
    charges = Charges(agent=Decimal("2"), classifier=Decimal("0.01"))
    # two tickets: one answered for 0.5, one to a person; the classifier on both
    assert cost_per_ticket(Decimal("0.5"), 1, 2, charges) == Decimal("1.26")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_synthetic_set(tmp_path / "data", [("card_arrival", 9000), ("card_linking", 9000),
                                            ("age_limit", 150)], out_of_scope=800, wrong_at=0.04)
    return tmp_path / "data"


def test_cells_calibration_writes_a_policy_the_router_routes_by(data_dir: Path,
                                                               tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    out = tmp_path / "calibrated.yaml"
    result = calibrate(out, base, data_dir, environ={}, method=Method.cells)
    written = load_policy(out)
    assert written.version == result.written.version != result.base.version
    assert written.error_budget == result.base.error_budget
    names = [r.name for r in written.rules]
    assert names[0] == "oos-person" and names[-2:] == ["confident-template", "rest-person"]
    gates = {c.cell.name: c.threshold for c in result.certificates}
    # 9,000 tickets support their own thresholds; age_limit's 150 do not and are pooled
    assert set(gates) == {"intent:card_arrival", "intent:card_linking", "pooled"}
    assert 150 < min_support(0.01, 0.05 / 5) < 0.7 * 9000  # ~30% below 0.3: not automatic
    for item in load_calibration_set(data_dir):
        cls = item.classification
        cell = f"intent:{cls.intent}" if f"intent:{cls.intent}" in gates else "pooled"
        expected = not cls.out_of_scope and cls.confidence >= 0.3 and cls.confidence > gates[cell]
        assert (route(written, item.ticket, cls).decision.handler != "human") == expected
    # both large cells certify a threshold stricter than the policy's own 0.3; the pooled cell
    # (age_limit, which also receives half of the misread tickets) is too small to certify
    # anything, so its tickets all go to a person
    assert all(0.3 < gates[f"intent:{i}"] < 0.95 for i in ("card_arrival", "card_linking"))
    assert gates["pooled"] == 1.0
    assert result.measured.wrong_rate <= 0.01
    assert result.measured.coverage > 0.2
    assert result.measured.cost_per_ticket < result.baselines.all_human == Decimal("1.50")
    report = as_dict(result)
    assert report["written_policy"] == written.version
    assert {p["cell"] for p in report["operating_points"] if p["certified"]} == set(gates) - {"pooled"}
    text = "\n".join(render(result))
    assert "risk-coverage curve" in text and "all-human 1.5000" in text


def test_a_tighter_business_unit_gets_its_own_cells(data_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE.replace(
        "error_budget: {max_wrong_rate: 0.01, confidence: 0.95}",
        "error_budget: {max_wrong_rate: 0.01, business_units: {wealth: {max_wrong_rate: 0.004}}}"))
    result = calibrate(tmp_path / "out.yaml", base, data_dir, environ={}, method=Method.cells)
    unit = {c.cell.name: c.threshold for c in result.unit_certificates["wealth"]}
    overall = {c.cell.name: c.threshold for c in result.certificates}
    assert all(unit[name] >= overall[name] for name in overall)
    unit_rules = [r for r in result.written.rules if r.when.business_units == ["wealth"]]
    assert unit_rules and all(r.handler == "human" for r in unit_rules)


def test_calibrate_refuses_when_no_threshold_is_certified(tmp_path: Path) -> None:
    write_synthetic_set(tmp_path / "data", [("card_arrival", 2000), ("card_linking", 2000)],
                        wrong_at=1.0)
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    out = tmp_path / "out.yaml"
    with pytest.raises(CalibrationRefused, match="no confidence threshold is certified"):
        calibrate(out, base, tmp_path / "data", max_wrong_rate=0.001, environ={})
    assert not out.exists()


def test_calibrate_needs_a_budget(data_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("rules:\n  - {name: a, handler: template}\n")
    with pytest.raises(PolicyError, match="no error_budget"):
        calibrate(tmp_path / "out.yaml", base, data_dir, environ={})
    result = calibrate(tmp_path / "out.yaml", base, data_dir, max_wrong_rate=0.02, environ={})
    assert result.written.error_budget is not None
    assert result.written.error_budget.max_wrong_rate == 0.02


def test_an_intent_group_with_its_own_budget_is_certified_apart(data_dir: Path,
                                                                tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE.replace(
        "error_budget: {max_wrong_rate: 0.01, confidence: 0.95}",
        "error_budget: {max_wrong_rate: 0.01, intent_groups: {cards: {max_wrong_rate: 0.005}}}"))
    with pytest.raises(PolicyError, match="--method cells"):
        calibrate(tmp_path / "out.yaml", base, data_dir, environ={})
    result = calibrate(tmp_path / "out.yaml", base, data_dir, environ={}, method=Method.cells)
    cells = {c.cell.name: c.cell for c in result.certificates}
    assert cells["group:cards"].intents == {"card_arrival"}
    assert cells["group:cards"].max_rate == 0.005
    assert "card_arrival" not in cells["pooled"].intents
    gate = next(r for r in result.written.rules if r.name == "error-budget-group-cards")
    assert gate.when.intents == ["card_arrival"] and gate.handler == "human"


def test_scored_calibration_writes_per_intent_gates_the_router_routes_by(
        data_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    out = tmp_path / "calibrated.yaml"
    result = calibrate(out, base, data_dir, environ={})
    run = result.family
    assert run is not None and run.shipped.chosen is not None and run.shipped.learn == "a"
    assert run.shipped.bound <= 0.01 and run.test.wrong_rate <= run.shipped.bound
    written = load_policy(out)
    gates = [r for r in written.rules if r.name.startswith("error-budget-")]
    names = [r.name for r in written.rules]
    assert names.index(gates[0].name) == 1 and names[-2:] == ["confident-template", "rest-person"]
    assert all(g.handler == "human" and g.when.intents and "Clopper-Pearson" in (g.reason or "")
               for g in gates)
    assert sorted(i for g in gates for i in g.when.intents or []) == sorted(run.thresholds)
    for item in load_calibration_set(data_dir):
        cls = item.classification
        expected = (not cls.out_of_scope and cls.confidence >= 0.3
                    and cls.confidence > run.thresholds[cls.intent])
        assert (route(written, item.ticket, cls).decision.handler != "human") == expected
    assert 0.3 < run.thresholds["card_arrival"] < 0.95
    cross = run.cross_fitted
    assert cross.automatic == run.test.automatic + run.swapped_test.automatic
    assert cross.wrong_rate <= 0.01 and cross.coverage > 0.3
    assert result.measured.cost_per_ticket < result.baselines.all_human
    report = as_dict(result)
    assert report["scored"]["shipped"]["certified"] and report["operating_points"] == []
    text = "\n".join(render(result))
    assert "learned family" in text and "cross-fitted" in text and "swap" in text
    again = calibrate(tmp_path / "again.yaml", out, data_dir, environ={})
    assert again.family is not None and again.family.thresholds == run.thresholds
    assert [r.name for r in again.written.rules] == names  # the gates replaced, not stacked


def test_a_tighter_business_unit_gets_its_own_scored_gates(data_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE.replace(
        "error_budget: {max_wrong_rate: 0.01, confidence: 0.95}",
        "error_budget: {max_wrong_rate: 0.01, business_units: {wealth: {max_wrong_rate: 0.005}}}"))
    result = calibrate(tmp_path / "out.yaml", base, data_dir, environ={})
    run = result.family
    assert run is not None and run.units["wealth"].chosen is not None
    assert run.units["wealth"].bound <= 0.005
    unit = run.unit_thresholds["wealth"]
    assert all(unit[i] >= run.thresholds[i] for i in unit)
    unit_rules = [r for r in result.written.rules if r.when.business_units == ["wealth"]]
    assert unit_rules and all(r.handler == "human" for r in unit_rules)
