"""`pinworks policy calibrate`, without the command-line layer: derive, report, write.

Routes every calibration ticket with the policy under calibration (the router's own rule
evaluation), certifies the gates (`--method scored`, the default: one learned family of per-
intent thresholds, `scored`; `--method cells`: a threshold per cell, `cells`, `ltt`), writes
the policy with its gates (`writer`), then routes the calibration tickets again through the
written policy to report what it does. With `--second-opinion-margin` the verifier's second-
opinion check is simulated too (`second_opinion`): the answers it escalates go to people before
the test counts the automatic ones, and the figures without it are printed beside. What this
cannot simulate: whether a specialist declines (the ticket then falls back, ending with a
person) and what the verifier's other checks escalate. Both only move automatic answers to
people, so the wrong answers counted here are an upper bound on the
wrong automatic answers of the running platform on these tickets; the wrong *share* stays
within the bound as long as those escalations do not pick correct answers more often than wrong
ones. An automatic answer counts as wrong when the ticket is out of scope or its intent was
misread, whichever handler answers (a model composing from passages is counted by the intent
the classifier read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pinworks_common.pricing import Price, load_prices
from pinworks_router.calibration.cells import (
    CellCertificate,
    Routed,
    certify_cells,
    partition,
    route_all,
    tightened,
)
from pinworks_router.calibration.curve import CurvePoint, Figures, curve, figures
from pinworks_router.calibration.dataset import (
    CalibrationTicket,
    default_data_dir,
    load_calibration_set,
    predictions_sha256,
)
from pinworks_router.calibration.economics import Baselines, Charges, baselines
from pinworks_router.calibration.ltt import PValue
from pinworks_router.calibration.scored import in_part
from pinworks_router.calibration.scored_run import FamilyRun, run_family
from pinworks_router.calibration.second_opinion import (
    LEARN,
    OFF,
    CheckEffect,
    MarginChoice,
    checked,
    choose_margin,
    effect,
    load_gaps,
)
from pinworks_router.calibration.writer import (
    calibrated_policy_text,
    family_gate_rules,
    gate_rules,
    without_gates,
)
from pinworks_router.policy import DEFAULT_POLICY, ErrorBudget, Policy, PolicyError, parse_policy


class CalibrationRefused(ValueError):
    """No threshold of any cell is certified: nothing would be answered automatically. Carries
    the risk-coverage curve, so the operator sees what budget the data could support."""

    def __init__(self, message: str, curve: list[CurvePoint]) -> None:
        super().__init__(message)
        self.curve = curve


class Method(StrEnum):
    scored = "scored"
    """One learned family of per-intent thresholds, certified on a held-apart part (`scored`)."""
    cells = "cells"
    """One threshold grid per cell on the whole set, Bonferroni across cells (`cells`)."""


@dataclass
class CalibrationResult:
    base: Policy
    written: Policy
    text: str
    budget: ErrorBudget
    certificates: list[CellCertificate]
    unit_certificates: dict[str, list[CellCertificate]]
    curve: list[CurvePoint]
    measured: Figures
    baselines: Baselines
    charges: Charges
    calibration_sha256: str
    by_source: dict[str, Figures] = field(default_factory=dict)
    family: FamilyRun | None = None
    """The scored method's certificates and held-out figures (None with `--method cells`)."""
    second_opinion: SecondOpinionRun | None = None
    """The verifier's check in the simulation (None without `--second-opinion-margin`)."""


@dataclass(frozen=True)
class SecondOpinionRun:
    margin: float
    """The shipped direction's margin (chosen on part `a` with `learn`)."""
    swap_margin: float
    choices: dict[str, MarginChoice]
    """With `learn`: each direction's choice, by learn part."""
    without: FamilyRun | None
    """The scored method without the check, for comparison."""
    written_effect: CheckEffect
    """What the check escalates of the written policy's automatic answers on the whole set."""


def budget_of(policy: Policy, max_wrong_rate: float | None, confidence: float | None) -> ErrorBudget:
    """The policy's error budget, with the command line's rate and confidence when given."""
    if policy.error_budget is None and max_wrong_rate is None:
        raise PolicyError(f"{policy.source}: no error_budget in the policy; add one (POLICY.md) "
                          "or give --max-wrong-rate")
    data = policy.error_budget.model_dump() if policy.error_budget else {}
    if max_wrong_rate is not None:
        data["max_wrong_rate"] = max_wrong_rate
    if confidence is not None:
        data["confidence"] = confidence
    try:
        return ErrorBudget.model_validate(data)
    except ValueError as exc:
        raise PolicyError(f"error budget: {exc}") from None


def _as_unit(items: list[CalibrationTicket], unit: str) -> list[CalibrationTicket]:
    return [CalibrationTicket(i.ticket.model_copy(update={"business_unit": unit}),
                              i.classification, i.label, i.source) for i in items]


def _sources(routed: list[Routed], charges: Charges) -> dict[str, Figures]:
    out = {}
    for source in sorted({r.item.source for r in routed}):
        mine = [r for r in routed if r.item.source == source]
        out[source] = figures(mine, (r.automatic for r in mine), charges)
    return out


def _check_written(threshold: dict[str, float], before: list[Routed], after: list[Routed]) -> None:
    """The written policy answers automatically exactly the tickets the certificates cover."""
    for old, new in zip(before, after, strict=True):
        expected = old.automatic and old.confidence > threshold.get(old.intent, 1.0)
        if new.automatic != expected:
            raise RuntimeError(f"the written policy routes {old.item.ticket.ticket_id} to "
                                 f"{new.handler}, not as certified")


def _refuse_cells(certs: list[CellCertificate], budget: ErrorBudget, points: list[CurvePoint]) -> None:
    if any(c.certification.chosen is not None for c in certs):
        return
    first = [next((p for p in c.certification.points if p.tested), None) for c in certs]
    seen = "; ".join(f"{c.cell.name}: {p.wrong} wrong of {p.answered} above {p.threshold}"
                     for c, p in zip(certs, first, strict=True) if p is not None)
    seen = f" (first threshold tested: {seen})" if seen else " (too few automatic answers)"
    raise CalibrationRefused(f"no confidence threshold is certified at {budget.max_wrong_rate:.2%} "
                             f"wrong at {budget.confidence:.0%} confidence{seen}", points)


def _refuse_family(run: FamilyRun, budget: ErrorBudget, points: list[CurvePoint]) -> None:
    cert = run.shipped
    if cert.chosen is not None:
        return
    first = cert.points[cert.start] if cert.start is not None else None
    seen = (f" (first tested: estimated wrong-probability <= {first.max_wrong:.3g}, {first.wrong} "
            f"wrong of {first.answered} on the test part)" if first is not None else
            " (too few automatic answers on the learn part to start the sequence)")
    raise CalibrationRefused(f"no confidence threshold is certified at {budget.max_wrong_rate:.2%} "
                             f"wrong at {budget.confidence:.0%} confidence{seen}", points)


def parse_margin(value: str | None) -> float | str | None:
    """`--second-opinion-margin`: a positive number, `learn`, or nothing (no check)."""
    if value is None or value == LEARN:
        return value
    try:
        margin = float(value)
    except ValueError:
        raise ValueError(f"--second-opinion-margin: {value!r} is neither a number nor "
                         f"{LEARN!r}") from None
    if not margin > 0:
        raise ValueError("--second-opinion-margin: the margin must be above 0")
    return margin


@dataclass
class _Checked:
    """The calibration tickets as each direction sees them after the verifier's check."""

    routed: list[Routed]
    swap_routed: list[Routed]
    margins: tuple[float, float]
    choices: dict[str, MarginChoice]


def _check(margin: float | str, method: Method, routed: list[Routed], gaps: Mapping[str, float],
           budget: ErrorBudget, p_values: PValue) -> _Checked:
    """Fixed margins apply to both directions; `learn` chooses each on its own learn part."""
    if margin != LEARN:
        fixed = float(margin)
        after = checked(routed, gaps, fixed)
        return _Checked(after, after, (fixed, fixed), {})
    if method is not Method.scored:
        raise ValueError("--second-opinion-margin learn needs --method scored (a learn part); "
                         "give the cells method a fixed margin")
    choices = {part: choose_margin(in_part(routed, part), gaps, budget.max_wrong_rate,
                                   1 - budget.confidence, p_values) for part in ("a", "b")}
    a, b = choices["a"].margin, choices["b"].margin
    return _Checked(checked(routed, gaps, a), checked(routed, gaps, b), (a, b), choices)


@dataclass
class _Derived:
    gates: list[dict[str, object]]
    thresholds: dict[str, float]
    certificates: list[CellCertificate]
    units: dict[str, list[CellCertificate]]
    family: FamilyRun | None


def _intents(items: list[CalibrationTicket]) -> list[str]:
    return sorted({i.label for i in items if i.in_scope} | {i.classification.intent for i in items})


def _derive(method: Method, base: Policy, budget: ErrorBudget, items: list[CalibrationTicket],
            routed: _Checked, prices: Mapping[str, Price], charges: Charges,
            points: list[CurvePoint], p_values: PValue,
            gaps: Mapping[str, float] | None) -> _Derived:
    """The gates of either method (refused when nothing is certified)."""
    intents = _intents(items)
    unit_routed = {u: route_all(base, _as_unit(items, u), prices) for u in budget.business_units}
    if gaps is not None:
        unit_routed = {u: checked(r, gaps, routed.margins[0]) for u, r in unit_routed.items()}
    if method is Method.scored:
        run = run_family(budget, routed.routed, intents, unit_routed, charges, p_values,
                         routed.swap_routed)
        _refuse_family(run, budget, points)
        gates = family_gate_rules(run.shipped, run.thresholds)
        for unit, cert in run.units.items():
            gates += family_gate_rules(cert, run.unit_thresholds[unit], unit, run.thresholds)
        return _Derived(gates, run.thresholds, [], {}, run)
    cells = partition(budget, base.intent_groups, routed.routed, intents)
    certs = certify_cells(cells, routed.routed, p_values)
    units = {}
    for unit, limit in budget.business_units.items():
        unit_cells = tightened(cells, limit.max_wrong_rate, limit.confidence or budget.confidence)
        units[unit] = certify_cells(unit_cells, unit_routed[unit], p_values)
    _refuse_cells(certs, budget, points)
    thresholds = {intent: c.threshold for c in certs for intent in c.cell.intents}
    return _Derived(gate_rules(certs, units), thresholds, certs, units, None)


def calibrate(
    out: Path, policy_path: Path | None = None, data_dir: Path | None = None,
    max_wrong_rate: float | None = None, confidence: float | None = None,
    p_values: PValue = PValue.binomial, environ: Mapping[str, str] | None = None,
    method: Method = Method.scored, second_opinion_margin: float | str | None = None,
) -> CalibrationResult:
    """Derive the thresholds that honour the budget and write the calibrated policy to `out`;
    `second_opinion_margin` (a margin or `learn`) simulates the verifier's second opinion."""
    policy_path = policy_path or DEFAULT_POLICY
    base_text = policy_path.read_text(encoding="utf-8")
    base = parse_policy(base_text, str(policy_path))
    ungated = parse_policy(without_gates(base_text), str(policy_path))
    budget = budget_of(base, max_wrong_rate, confidence)
    data_dir = data_dir or default_data_dir()
    if data_dir is None:
        raise FileNotFoundError("no calibration set found: give --data-dir (the classifier's "
                                "data folder holding calibration/predictions.csv)")
    items = load_calibration_set(data_dir)
    prices = load_prices(environ)
    charges = Charges.from_environment(environ)
    unchecked = route_all(ungated, items, prices)
    gaps, routed = None, _Checked(unchecked, unchecked, (OFF, OFF), {})
    if second_opinion_margin is not None:
        gaps = load_gaps(data_dir, items)
        routed = _check(second_opinion_margin, method, unchecked, gaps, budget, p_values)
    points = curve(routed.routed, 1 - budget.confidence, charges)
    derived = _derive(method, ungated, budget, items, routed, prices, charges, points, p_values,
                      gaps)
    sha = predictions_sha256(data_dir)
    how = ("Learn-then-Test over one learned family of per-intent thresholds, learn part a, "
           "test part b" if method is Method.scored else "fixed-sequence Learn-then-Test per cell")
    provenance = (f"`pinworks policy calibrate` from {base.version} on the calibration set "
                  f"predictions.csv sha256 {sha[:12]} ({len(items)} tickets, {p_values.value} "
                  f"p-values, {how}).")
    margin = routed.margins[0]
    if margin != OFF:
        provenance += (f" Certified for the automatic answers left after the verifier's "
                       f"second-opinion check at margin {margin:g}: run the verifier with "
                       f"VERIFIER_SECOND_OPINION=true VERIFIER_SECOND_OPINION_MARGIN={margin:g}, "
                       "or this budget is not certified.")
    text = calibrated_policy_text(base_text, budget, derived.gates, provenance)
    written = parse_policy(text, str(out))
    written_routes = route_all(written, items, prices)
    measured_routes = checked(written_routes, gaps, margin) if gaps is not None else written_routes
    _check_written(derived.thresholds, routed.routed, measured_routes)
    second = None
    if gaps is not None:
        without = (run_family(budget, unchecked, _intents(items), {}, charges, p_values)
                   if method is Method.scored else None)
        second = SecondOpinionRun(margin, routed.margins[1], routed.choices, without,
                                  effect(written_routes, gaps, margin))
    out.write_text(text, encoding="utf-8")
    return CalibrationResult(
        base=base, written=written, text=text, budget=budget, certificates=derived.certificates,
        unit_certificates=derived.units, curve=points,
        measured=figures(measured_routes, (r.automatic for r in measured_routes), charges),
        baselines=baselines(prices, [(i.ticket.subject, i.ticket.body) for i in items],
                            charges.agent),
        charges=charges, calibration_sha256=sha, by_source=_sources(measured_routes, charges),
        family=derived.family, second_opinion=second)
