"""`pinworks policy calibrate`, without the command-line layer: derive, report, write.

Routes every calibration ticket with the policy under calibration (the router's own rule
evaluation), certifies the gates (`--method scored`, the default: one learned family of per-
intent thresholds, `scored`; `--method cells`: a threshold per cell, `cells`, `ltt`), writes
the policy with its gates (`writer`), then routes the calibration tickets again through the
written policy to report what it does. What this cannot simulate: whether a specialist declines
(the ticket then falls back, ending with a person) and what the verifier escalates. Both only
move automatic answers to people, so the wrong answers counted here are an upper bound on the
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
from pinworks_router.calibration.scored_run import FamilyRun, run_family
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


@dataclass
class _Derived:
    gates: list[dict[str, object]]
    thresholds: dict[str, float]
    certificates: list[CellCertificate]
    units: dict[str, list[CellCertificate]]
    family: FamilyRun | None


def _derive(method: Method, base: Policy, budget: ErrorBudget, items: list[CalibrationTicket],
            routed: list[Routed], prices: Mapping[str, Price], charges: Charges,
            points: list[CurvePoint], p_values: PValue) -> _Derived:
    """The gates of either method (refused when nothing is certified)."""
    intents = sorted({i.label for i in items if i.in_scope} | {i.classification.intent for i in items})
    unit_routed = {u: route_all(base, _as_unit(items, u), prices) for u in budget.business_units}
    if method is Method.scored:
        run = run_family(budget, routed, intents, unit_routed, charges, p_values)
        _refuse_family(run, budget, points)
        gates = family_gate_rules(run.shipped, run.thresholds)
        for unit, cert in run.units.items():
            gates += family_gate_rules(cert, run.unit_thresholds[unit], unit, run.thresholds)
        return _Derived(gates, run.thresholds, [], {}, run)
    cells = partition(budget, base.intent_groups, routed, intents)
    certs = certify_cells(cells, routed, p_values)
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
    method: Method = Method.scored,
) -> CalibrationResult:
    """Derive the thresholds that honour the budget and write the calibrated policy to `out`."""
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
    routed = route_all(ungated, items, prices)
    points = curve(routed, 1 - budget.confidence, charges)
    derived = _derive(method, ungated, budget, items, routed, prices, charges, points, p_values)
    sha = predictions_sha256(data_dir)
    how = ("Learn-then-Test over one learned family of per-intent thresholds, learn part a, "
           "test part b" if method is Method.scored else "fixed-sequence Learn-then-Test per cell")
    provenance = (f"`pinworks policy calibrate` from {base.version} on the calibration set "
                  f"predictions.csv sha256 {sha[:12]} ({len(items)} tickets, {p_values.value} "
                  f"p-values, {how}).")
    text = calibrated_policy_text(base_text, budget, derived.gates, provenance)
    written = parse_policy(text, str(out))
    measured_routes = route_all(written, items, prices)
    _check_written(derived.thresholds, routed, measured_routes)
    out.write_text(text, encoding="utf-8")
    return CalibrationResult(
        base=base, written=written, text=text, budget=budget, certificates=derived.certificates,
        unit_certificates=derived.units, curve=points,
        measured=figures(measured_routes, (r.automatic for r in measured_routes), charges),
        baselines=baselines(prices, [(i.ticket.subject, i.ticket.body) for i in items],
                            charges.agent),
        charges=charges, calibration_sha256=sha, by_source=_sources(measured_routes, charges),
        family=derived.family)
