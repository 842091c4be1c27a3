"""`pinworks policy calibrate`, without the command-line layer: derive, report, write.

Routes every calibration ticket with the policy under calibration (the router's own rule
evaluation), certifies a threshold per cell (`cells`, `ltt`), writes the policy with its gates
(`writer`), then routes the calibration tickets again through the written policy to report what
it does. What this cannot simulate: whether a specialist declines (the ticket then falls back,
ending with a person) and what the verifier escalates. Both only move automatic answers to
people, so the wrong answers counted here are an upper bound on the wrong automatic answers of
the running platform on these tickets; the wrong *share* stays within the bound as long as
those escalations do not pick correct answers more often than wrong ones. An automatic answer
counts as wrong when the ticket is out of scope or its intent was misread, whichever handler
answers (a model composing from passages is counted by the intent the classifier read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pinworks_common.pricing import load_prices
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
from pinworks_router.calibration.writer import calibrated_policy_text, gate_rules
from pinworks_router.policy import DEFAULT_POLICY, ErrorBudget, Policy, PolicyError, parse_policy


class CalibrationRefused(ValueError):
    """No threshold of any cell is certified: nothing would be answered automatically. Carries
    the risk-coverage curve, so the operator sees what budget the data could support."""

    def __init__(self, message: str, curve: list[CurvePoint]) -> None:
        super().__init__(message)
        self.curve = curve


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


def _check_written(certs: list[CellCertificate], before: list[Routed], after: list[Routed]) -> None:
    """The written policy answers automatically exactly the tickets the certificates cover."""
    threshold = {intent: c.threshold for c in certs for intent in c.cell.intents}
    for old, new in zip(before, after, strict=True):
        expected = old.automatic and old.confidence > threshold.get(old.intent, 1.0)
        if new.automatic != expected:
            raise RuntimeError(f"the written policy routes {old.item.ticket.ticket_id} to "
                                 f"{new.handler}, not as certified")


def calibrate(
    out: Path, policy_path: Path | None = None, data_dir: Path | None = None,
    max_wrong_rate: float | None = None, confidence: float | None = None,
    method: PValue = PValue.binomial, environ: Mapping[str, str] | None = None,
) -> CalibrationResult:
    """Derive the thresholds that honour the budget and write the calibrated policy to `out`."""
    policy_path = policy_path or DEFAULT_POLICY
    base_text = policy_path.read_text(encoding="utf-8")
    base = parse_policy(base_text, str(policy_path))
    budget = budget_of(base, max_wrong_rate, confidence)
    data_dir = data_dir or default_data_dir()
    if data_dir is None:
        raise FileNotFoundError("no calibration set found: give --data-dir (the classifier's "
                                "data folder holding calibration/predictions.csv)")
    items = load_calibration_set(data_dir)
    prices = load_prices(environ)
    charges = Charges.from_environment(environ)
    routed = route_all(base, items, prices)
    intents = sorted({i.label for i in items if i.in_scope} | {i.classification.intent for i in items})
    cells = partition(budget, base.intent_groups, routed, intents)
    certs = certify_cells(cells, routed, method)
    units = {}
    for unit, limit in budget.business_units.items():
        unit_cells = tightened(cells, limit.max_wrong_rate, limit.confidence or budget.confidence)
        units[unit] = certify_cells(unit_cells, route_all(base, _as_unit(items, unit), prices), method)
    points = curve(routed, 1 - budget.confidence, charges)
    if all(c.certification.chosen is None for c in certs):
        first = [next((p for p in c.certification.points if p.tested), None) for c in certs]
        seen = "; ".join(f"{c.cell.name}: {p.wrong} wrong of {p.answered} above {p.threshold}"
                         for c, p in zip(certs, first, strict=True) if p is not None)
        seen = f" (first threshold tested: {seen})" if seen else " (too few automatic answers)"
        raise CalibrationRefused(f"no confidence threshold is certified at {budget.max_wrong_rate:.2%} "
                                 f"wrong at {budget.confidence:.0%} confidence{seen}", points)
    sha = predictions_sha256(data_dir)
    provenance = (f"`pinworks policy calibrate` from {base.version} on the calibration set "
                  f"predictions.csv sha256 {sha[:12]} ({len(items)} tickets, {method.value} "
                  "p-values, fixed-sequence Learn-then-Test).")
    text = calibrated_policy_text(base_text, budget, gate_rules(certs, units), provenance)
    written = parse_policy(text, str(out))
    measured_routes = route_all(written, items, prices)
    _check_written(certs, routed, measured_routes)
    out.write_text(text, encoding="utf-8")
    return CalibrationResult(
        base=base, written=written, text=text, budget=budget, certificates=certs,
        unit_certificates=units, curve=points,
        measured=figures(measured_routes, (r.automatic for r in measured_routes), charges),
        baselines=baselines(prices, [(i.ticket.subject, i.ticket.body) for i in items],
                            charges.agent),
        charges=charges, calibration_sha256=sha, by_source=_sources(measured_routes, charges))
