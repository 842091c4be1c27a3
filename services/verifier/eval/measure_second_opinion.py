"""Measure the second-opinion check on the classifier's own out-of-fold predictions, all folds.

    .venv/bin/python services/verifier/eval/measure_second_opinion.py [--json] [--margin M]

Rows: the calibration set (services/classifier/data/calibration/predictions.csv: all 10,003
BANKING77 train rows out of fold, CLINC150 val/oos_val) with the second reader's out-of-fold
readings beside it (`second_opinion.csv`, written by `second_opinion_readings.py`: each BANKING77
row read by a reader that did not train on its fold; CLINC150 rows by a reader trained on every
BANKING77 row). The margin is the shipped artifact's (chosen on half of fold 0 with the earlier
proxy's predictions) unless `--margin` says otherwise; nothing here chooses one.

Reported, with Wilson 95% intervals: at confidence >= 0.8 and >= 0.9 (in scope), the share of
the classifier's errors the check catches and of its right answers it escalates; the same among
the automatic answers of the router's shipped policy (its error-budget gates, routed by the
router's own rules), with the wrong share and in-scope coverage before and after; why errors
are missed (the reader agrees with the classifier's wrong intent, or names the true one); and
the catches and false alarms at other margins, for the curve; and, per margin, the share of
in-scope tickets the best single confidence threshold answers at <= 1% wrong after the check
(the policy without its gates, in-sample: a ceiling for one shared threshold). Ticket-level only:
these rows have no drafts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_second_opinion import DATA  # noqa: E402

from pinworks_common.pricing import load_prices  # noqa: E402
from pinworks_router.calibration.cells import Routed, route_all  # noqa: E402
from pinworks_router.calibration.dataset import load_calibration_set  # noqa: E402
from pinworks_router.calibration.second_opinion import OFF, READINGS, load_gaps  # noqa: E402
from pinworks_router.calibration.writer import without_gates  # noqa: E402
from pinworks_router.policy import DEFAULT_POLICY, load_policy, parse_policy  # noqa: E402
from pinworks_verifier.second_opinion import SecondOpinionModel  # noqa: E402

CONFIDENT = (0.8, 0.9)
SWEEP = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
MAX_WRONG = 0.01
THRESHOLDS = np.linspace(0.3, 0.999, 700)


def share(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 4) if len(flags) else None


def wilson(flags: np.ndarray, z: float = 1.96) -> list[float] | None:
    """Wilson score 95% interval of a share (Wilson, 1927): these counts are small."""
    n = len(flags)
    if not n:
        return None
    p = float(flags.mean())
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def caught(rows: Sequence[Routed], gaps: dict[str, float], margin: float) -> dict[str, object]:
    """Errors caught and right answers escalated among `rows` at `margin`."""
    flagged = np.array([gaps[r.item.ticket.ticket_id] >= margin for r in rows], bool)
    wrong = np.array([r.wrong for r in rows], bool)
    return {"errors": int(wrong.sum()), "caught": share(flagged[wrong]),
            "caught_ci": wilson(flagged[wrong]), "right": int((~wrong).sum()),
            "escalated": share(flagged[~wrong]), "escalated_ci": wilson(flagged[~wrong])}


def before_after(everyone: Sequence[Routed], gaps: dict[str, float],
                 margin: float) -> dict[str, object]:
    """The shipped policy's automatic answers before and after the check."""
    automatic = [r for r in everyone if r.automatic]
    kept = [r for r in automatic if gaps[r.item.ticket.ticket_id] < margin]
    in_scope = sum(r.item.in_scope for r in everyone)
    out_of_scope = len(everyone) - in_scope
    return {
        "automatic_before": len(automatic), "automatic_after": len(kept),
        "wrong_rate_before": share(np.array([r.wrong for r in automatic])),
        "wrong_rate_after": share(np.array([r.wrong for r in kept])),
        "in_scope_coverage_before": round(sum(r.item.in_scope for r in automatic) / in_scope, 4),
        "in_scope_coverage_after": round(sum(r.item.in_scope for r in kept) / in_scope, 4),
        "out_of_scope_automatic_before": sum(not r.item.in_scope for r in automatic),
        "out_of_scope_automatic_after": sum(not r.item.in_scope for r in kept),
        "out_of_scope_tickets": out_of_scope,
    }


def missed_why(rows: Sequence[Routed], best: dict[str, str]) -> dict[str, int]:
    """Of the confident errors, how often the reader agrees with the classifier or is right."""
    errors = [r for r in rows if r.wrong and r.item.in_scope]
    return {"errors": len(errors),
            "reader_agrees_with_the_classifier": sum(best[r.item.ticket.ticket_id] == r.intent
                                                     for r in errors),
            "reader_names_the_true_intent": sum(best[r.item.ticket.ticket_id] == r.item.label
                                                for r in errors)}


def best_threshold(everyone: Sequence[Routed], gaps: dict[str, float], margin: float,
                   max_wrong: float = MAX_WRONG) -> float:
    """In-scope share answered at the best single confidence threshold whose wrong share (after
    the check) is at most `max_wrong`, on these rows: in-sample and uncertified, so a ceiling
    for one shared threshold."""
    conf = np.array([r.confidence for r in everyone])
    keep = np.array([r.automatic and gaps[r.item.ticket.ticket_id] < margin for r in everyone])
    wrong = np.array([r.wrong for r in everyone])
    in_scope = np.array([r.item.in_scope for r in everyone])
    best = 0.0
    for threshold in THRESHOLDS:
        answered = keep & (conf > threshold)
        if answered.any() and wrong[answered].mean() <= max_wrong:
            best = max(best, float((answered & in_scope).sum() / in_scope.sum()))
    return round(best, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--margin", type=float, help="default: the shipped artifact's")
    args = parser.parse_args()
    margin = args.margin if args.margin is not None else SecondOpinionModel.load().margin or 0.0
    items = load_calibration_set(DATA)
    gaps = load_gaps(DATA, items)
    best = _best(DATA)
    routed = route_all(load_policy(), items, load_prices())
    banking = [r for r in routed if r.item.source == "banking77_train"]
    confident = {f">={bar}": [r for r in routed if r.item.in_scope and r.confidence >= bar
                              and not r.item.classification.out_of_scope] for bar in CONFIDENT}
    gated = [r for r in banking if r.automatic]
    ungated = route_all(parse_policy(without_gates(DEFAULT_POLICY.read_text("utf-8"))), items,
                        load_prices())
    figures = {
        "margin": margin, "rows": len(routed), "banking77_rows": len(banking),
        "confident": {bar: caught(rows, gaps, margin) for bar, rows in confident.items()},
        "shipped_policy": {"caught": caught(gated, gaps, margin),
                           **before_after(routed, gaps, margin)},
        "missed_why": {bar: missed_why(rows, best) for bar, rows in confident.items()}
        | {"shipped_policy": missed_why(gated, best)},
        "sweep": {str(m): {"confident>=0.8": caught(confident[">=0.8"], gaps, m),
                           "shipped_policy": caught(gated, gaps, m)} for m in SWEEP},
        "best_single_threshold_in_scope_at_1pct": {
            str(m): best_threshold(ungated, gaps, m) for m in (OFF, *SWEEP)},
    }
    print(json.dumps(figures, indent=1) if args.json else _table(figures))


def _best(data: Path) -> dict[str, str]:
    import csv

    with (data / READINGS).open(newline="", encoding="utf-8") as handle:
        return {f"{r['source']}-{r['row']}": r["best"] for r in csv.DictReader(handle)}


def _table(figures: dict[str, object]) -> str:
    lines = [f"margin {figures['margin']}; {figures['rows']} calibration rows "
             f"({figures['banking77_rows']} BANKING77 out of fold)"]
    for key in ("confident", "shipped_policy", "missed_why", "sweep",
                "best_single_threshold_in_scope_at_1pct"):
        lines.append(f"\n[{key}]")
        block = figures[key]
        assert isinstance(block, dict)
        lines += [f"  {name}: {json.dumps(value)}" for name, value in block.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
