"""What `pinworks policy calibrate` prints: the curve, each cell's operating point and bound,
the written policy's figures and the cost per ticket beside the all-frontier and all-human
baselines (plain text or JSON)."""

from __future__ import annotations

from typing import Any

from pinworks_router.calibration.cells import CellCertificate
from pinworks_router.calibration.command import CalibrationResult, SecondOpinionRun
from pinworks_router.calibration.curve import CurvePoint, Figures
from pinworks_router.calibration.economics import Charges
from pinworks_router.calibration.ltt import upper_bound
from pinworks_router.calibration.scored import FamilyCertificate
from pinworks_router.calibration.scored_run import FamilyRun
from pinworks_router.calibration.second_opinion import OFF


def _point(cert: CellCertificate) -> dict[str, Any]:
    chosen = cert.certification.chosen
    out: dict[str, Any] = {
        "cell": cert.cell.name, "intents": len(cert.cell.intents),
        "max_wrong_rate": cert.cell.max_rate, "confidence": cert.cell.confidence,
        "level": round(cert.delta, 6), "threshold": cert.threshold, "certified": chosen is not None,
    }
    if chosen is not None:
        out.update(automatic=chosen.answered, wrong=chosen.wrong,
                   wrong_rate=round(chosen.wrong_rate, 6), p_value=chosen.p_value,
                   upper_bound=round(upper_bound(chosen.wrong, chosen.answered, cert.delta), 6))
    return out


def _family_point(cert: FamilyCertificate) -> dict[str, Any]:
    out: dict[str, Any] = {"learn_part": cert.learn, "max_wrong_rate": cert.max_rate,
                           "confidence": round(1 - cert.delta, 6), "certified": cert.chosen is not None}
    if cert.chosen is not None:
        out.update(max_estimated_wrong=cert.chosen.max_wrong, automatic=cert.chosen.answered,
                   wrong=cert.chosen.wrong, wrong_rate=round(cert.chosen.wrong_rate, 6),
                   p_value=cert.chosen.p_value, upper_bound=round(cert.bound, 6))
    return out


def family_dict(run: FamilyRun) -> dict[str, Any]:
    return {
        "shipped": _family_point(run.shipped), "swapped": _family_point(run.swapped),
        "business_units": {u: _family_point(c) for u, c in run.units.items()},
        "thresholds": run.thresholds, "test_part": run.test.as_dict(),
        "swapped_test_part": run.swapped_test.as_dict(),
        "cross_fitted": run.cross_fitted.as_dict(),
        "cross_fitted_by_source": {s: f.as_dict() for s, f in run.cross_fitted_by_source.items()},
        "curve": [{"max_estimated_wrong": p.max_wrong, **p.figures.as_dict(),
                   "upper_bound": round(p.upper_bound, 6), "tested": p.tested} for p in run.curve],
    }


def _margin(value: float) -> float | None:
    return None if value == OFF else value


def second_opinion_dict(run: SecondOpinionRun) -> dict[str, Any]:
    return {
        "margin": _margin(run.margin), "swap_margin": _margin(run.swap_margin),
        "learn_choices": {part: {"margin": _margin(c.margin),
                                 "inner_in_scope_automatic": {str(_margin(m)): n
                                                              for m, n in c.inner_coverage.items()}}
                          for part, c in run.choices.items()},
        "written_policy_effect": run.written_effect.as_dict(),
        "without_check": family_dict(run.without) if run.without else None,
    }


def curve_dict(point: CurvePoint) -> dict[str, Any]:
    return {"threshold": point.threshold, **point.figures.as_dict(),
            "upper_bound": round(point.upper_bound, 6)}


def as_dict(result: CalibrationResult) -> dict[str, Any]:
    return {
        "base_policy": result.base.version, "written_policy": result.written.version,
        "written_to": result.written.source, "calibration_sha256": result.calibration_sha256,
        "error_budget": result.budget.model_dump(exclude_none=True),
        "operating_points": [_point(c) for c in result.certificates],
        "business_units": {u: [_point(c) for c in certs]
                           for u, certs in result.unit_certificates.items()},
        "curve": [curve_dict(p) for p in result.curve],
        "scored": family_dict(result.family) if result.family else None,
        "second_opinion": second_opinion_dict(result.second_opinion) if result.second_opinion
        else None,
        "measured": result.measured.as_dict(),
        "measured_by_source": {s: f.as_dict() for s, f in result.by_source.items()},
        "agent_cost_usd": str(result.charges.agent),
        "classifier_cost_usd": str(result.charges.classifier),
        "baselines": {"all_frontier_usd": str(round(result.baselines.all_frontier, 6)),
                      "all_human_usd": str(result.baselines.all_human)},
    }


def _row(label: str, f: Figures, bound: str = "") -> str:
    return (f"{label:>16} {f.automatic:>9} {f.wrong:>6} {f.wrong_rate:>7.2%} {bound:>7} "
            f"{f.coverage:>9.1%} {f.out_of_scope_rate:>8.1%} {f.cost_per_ticket:>9.4f}")


HEADER = (f"{'threshold':>16} {'automatic':>9} {'wrong':>6} {'wrong%':>7} {'bound':>7} "
          f"{'in-scope':>9} {'oos-auto':>8} {'USD/tkt':>9}")


def curve_lines(points: list[CurvePoint], charges: Charges, confidence: float) -> list[str]:
    lines = [
        "risk-coverage curve (one threshold for every intent, on top of the policy's own rules;",
        f"bound: one-sided {confidence:.0%} Clopper-Pearson, pointwise; in-scope: share "
        "answered automatically; oos-auto: share of out-of-scope answered automatically;",
        f"USD/tkt: {charges.classifier} classifier per ticket + handler estimates + "
        f"{charges.agent} per ticket a person handles)",
        HEADER,
    ]
    return lines + [_row(f"{p.threshold:g}", p.figures, f"{p.upper_bound:.2%}") for p in points]


def _certificate_line(label: str, cert: FamilyCertificate) -> str:
    chosen = cert.chosen
    if chosen is None:
        return f"  {label}: nothing certified"
    return (f"  {label}: estimated wrong-probability <= {chosen.max_wrong:.3g}: {chosen.answered} "
            f"automatic, {chosen.wrong} wrong ({chosen.wrong_rate:.2%}), p-value "
            f"{chosen.p_value:.3g}, upper bound {cert.bound:.2%} <= {cert.max_rate:.2%}")


def family_lines(run: FamilyRun) -> list[str]:
    gates = len(set(run.thresholds.values()))
    lines = [
        "", "learned family (scored: answer when the estimated wrong-probability <= lambda; "
        "learn part a, test part b;", "rows on the test part, * where the sequence tested, "
        "bound pointwise Clopper-Pearson):", HEADER.replace("       threshold", "lambda          "),
    ]
    shown = [p for p in run.curve if p.figures.automatic]
    lines += [_row(f"{p.max_wrong:.3g}{'*' if p.tested else ''}", p.figures, f"{p.upper_bound:.2%}")
              for p in shown]
    lines += ["", f"operating points ({len(run.thresholds)} intents, {gates} distinct thresholds, "
              "fixed-sequence Learn-then-Test, strict to loose):",
              _certificate_line("learn a / test b (shipped)", run.shipped),
              _certificate_line("learn b / test a (swap, a check)", run.swapped)]
    lines += [_certificate_line(f"unit {u} (learn a / test b)", c) for u, c in run.units.items()]
    lines += ["", "held-out figures (on tickets the estimate was not fitted on; lambda certified "
              "there):", HEADER,
              _row("test b", run.test), _row("swap: test a", run.swapped_test),
              _row("cross-fitted", run.cross_fitted)]
    lines += [_row(f"  {source[:14]}", f) for source, f in run.cross_fitted_by_source.items()]
    return lines


def _cells_lines(result: CalibrationResult) -> list[str]:
    lines = ["", "operating points (fixed-sequence Learn-then-Test, strict to loose, per cell):"]
    for scope, certs in [("policy", result.certificates), *result.unit_certificates.items()]:
        for point in map(_point, certs):
            head = (f"  {scope}/{point['cell']} ({point['intents']} intents, "
                    f"level {point['level']:.4g}): ")
            if not point["certified"]:
                lines.append(head + "no threshold certified; every ticket to a person")
                continue
            lines.append(head + f"confidence > {point['threshold']} answered automatically: "
                         f"{point['automatic']} automatic, {point['wrong']} wrong "
                         f"({point['wrong_rate']:.2%}), upper bound {point['upper_bound']:.2%} "
                         f"<= {point['max_wrong_rate']:.2%}")
    return lines


def _margin_text(value: float) -> str:
    return "off" if value == OFF else f"{value:g}"


def second_opinion_lines(run: SecondOpinionRun, family: FamilyRun | None) -> list[str]:
    """The check's margin and effect, and the held-out figures without and with it."""
    hit = run.written_effect
    lines = ["", f"verifier's second-opinion check: margin {_margin_text(run.margin)} "
             f"(shipped direction), {_margin_text(run.swap_margin)} (swap)"]
    for part, choice in run.choices.items():
        tried = ", ".join(f"{_margin_text(m)}: {n}" for m, n in choice.inner_coverage.items())
        lines.append(f"  chosen on learn part {part} (in-scope automatic answers certified on its "
                     f"inner test halves by margin): {tried}")
    lines.append(f"  of the written policy's {hit.automatic} automatic answers before the check "
                 f"({hit.wrong} wrong) it escalates {hit.wrong_escalated} wrong and "
                 f"{hit.right_escalated} right ones")
    if run.without is not None and family is not None:
        lines += ["  held-out figures without -> with the check:", HEADER]
        for label, before, after in (("test b", run.without.test, family.test),
                                     ("swap a", run.without.swapped_test, family.swapped_test),
                                     ("cross-fit", run.without.cross_fitted, family.cross_fitted)):
            lines += [_row(f"{label} w/o", before), _row(f"{label} with", after)]
        change = family.cross_fitted.coverage - run.without.cross_fitted.coverage
        lines.append(f"  cross-fitted in-scope automatic {run.without.cross_fitted.coverage:.1%} -> "
                     f"{family.cross_fitted.coverage:.1%} ({change * 100:+.2f} points), wrong "
                     f"{run.without.cross_fitted.wrong_rate:.2%} -> "
                     f"{family.cross_fitted.wrong_rate:.2%}, cost per ticket "
                     f"{run.without.cross_fitted.cost_per_ticket:.4f} -> "
                     f"{family.cross_fitted.cost_per_ticket:.4f} USD")
    return lines


def render(result: CalibrationResult) -> list[str]:
    budget = result.budget
    lines = [
        f"calibrated {result.base.version} -> {result.written.version} "
        f"(written to {result.written.source})",
        f"budget: at most {budget.max_wrong_rate:.2%} of automatic answers wrong, at "
        f"{budget.confidence:.0%} confidence; calibration set sha256 "
        f"{result.calibration_sha256[:12]} ({result.measured.tickets} tickets: "
        f"{result.measured.in_scope} in scope, {result.measured.out_of_scope} out of scope)",
        "",
        *curve_lines(result.curve, result.charges, budget.confidence),
    ]
    lines += family_lines(result.family) if result.family else _cells_lines(result)
    if result.second_opinion is not None:
        lines += second_opinion_lines(result.second_opinion, result.family)
    lines += ["", "the written policy on the whole calibration set (routed again, rule by rule"
              + ("; the learn part is in-sample for the estimate" if result.family else "") + "):",
              HEADER,
              _row("all", result.measured)]
    lines += [_row(source[:16], f) for source, f in result.by_source.items()]
    lines += ["", f"cost per ticket including people: {result.measured.cost_per_ticket:.4f} USD; "
              f"all-frontier {result.baselines.all_frontier:.4f} USD (no people); all-human "
              f"{result.baselines.all_human:.4f} USD"]
    return lines
