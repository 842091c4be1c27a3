"""Measure the second-opinion check on the classifier's own out-of-fold predictions.

    .venv/bin/python services/verifier/eval/measure_second_opinion.py [--json]

Rows: the calibration set (services/classifier/data/calibration/predictions.csv). Reported on
the *measurement* half of CV fold 0 (the half `build_second_opinion.py` did not choose the
margin on; the reader never trained on fold 0), with the shipped margin. As a cross-check the
halves are swapped (margin chosen on the measurement half, measured on the validation half),
and the whole fold is reported cross-fitted (each half with the other half's margin). Shares
come with Wilson 95% intervals.
Out of scope: CLINC150 val/oos_val tickets the classifier would answer automatically; neither
the reader nor the margin saw them.

Beside it, the existing naive-Bayes ticket reading of the completeness check (`ticket_intent`
below its calibrated margin). That scorer trained on a hash split of BANKING77 train that
overlaps fold 0 (~70% of these rows are its training rows), so its figures here are flattering.
Only ticket-level checks are measured: these rows have no drafts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_second_opinion import (  # noqa: E402
    Prediction,
    banking77_folds,
    calibration_rows,
    choose_margin,
    fold_halves,
)

from pinworks_verifier.intent_scorer import NaiveBayesIntentScorer  # noqa: E402
from pinworks_verifier.second_opinion import SecondOpinionModel  # noqa: E402

Flags = Callable[[Sequence[Prediction]], np.ndarray]
CONFIDENT = (0.8, 0.9)


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


def confident_figures(rows: Sequence[Prediction], flag: Flags) -> dict[str, object]:
    """At each confidence bar: the share of confident errors caught, of right ones escalated."""
    out: dict[str, object] = {}
    for bar in CONFIDENT:
        wrong = [p for p in rows if not p.out_of_scope and p.confidence >= bar and not p.right]
        right = [p for p in rows if not p.out_of_scope and p.confidence >= bar and p.right]
        caught, escalated = flag(wrong), flag(right)
        out[f">={bar}"] = {"errors": len(wrong), "caught": share(caught), "caught_ci": wilson(caught),
                           "right": len(right), "escalated": share(escalated),
                           "escalated_ci": wilson(escalated)}
    return out


def automatic_figures(rows: Sequence[Prediction], flag: Flags) -> dict[str, object]:
    """The default policy's automatic answers (in scope, confidence >= 0.55) before and after."""
    automatic = [p for p in rows if p.automatic]
    escalated = flag(automatic)
    wrong = np.array([not p.right for p in automatic])
    kept = ~escalated
    return {
        "tickets": len(rows), "automatic": len(automatic),
        "wrong_rate_before": share(wrong), "wrong_rate_after": share(wrong[kept]),
        "coverage_before": round(len(automatic) / len(rows), 4),
        "coverage_after": round(int(kept.sum()) / len(rows), 4),
        "wrong_caught": share(escalated[wrong]), "right_escalated": share(escalated[~wrong]),
    }


def report(rows: list[Prediction], flags: dict[str, Flags],
           oos: list[Prediction]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, flag in flags.items():
        clinc_auto = [p for p in oos if p.automatic]
        out[name] = {
            "confident": confident_figures(rows, flag),
            "automatic": automatic_figures(rows, flag),
            "out_of_scope": {"tickets": len(oos), "automatic_before": len(clinc_auto),
                             "escalated": share(flag(clinc_auto))},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    data = banking77_folds()
    validation_rows, measurement_rows = fold_halves(data)
    predictions = calibration_rows()
    banking = [p for p in predictions if p.source == "banking77_train"]
    validation = [p for p in banking if p.row in validation_rows]
    measurement = [p for p in banking if p.row in measurement_rows]
    oos = [p for p in predictions if p.source != "banking77_train"]
    clinc_texts = _clinc_texts(oos)
    reader = SecondOpinionModel.load()
    nb = NaiveBayesIntentScorer.load("ticket_intent")
    nb_margin = float(nb.meta["calibration"]["margin_threshold"])
    shipped = reader.margin or 0.0
    swapped, _ = choose_margin(reader, data.texts, measurement)

    def text_of(p: Prediction) -> str:
        return data.texts[p.row] if p.source == "banking77_train" else clinc_texts[p.row, p.source]

    def second(margin: float) -> Flags:
        return lambda ps: np.array([reader.read(text_of(p), p.intent).gap >= margin for p in ps],
                                   bool)

    def naive_bayes(ps: Sequence[Prediction]) -> np.ndarray:
        return np.array([nb.score(text_of(p)).margin(p.intent) < nb_margin for p in ps], bool)

    def either(ps: Sequence[Prediction]) -> np.ndarray:
        return second(shipped)(ps) | naive_bayes(ps)

    def cross_fitted(ps: Sequence[Prediction]) -> np.ndarray:
        """Each half judged with the margin chosen on the other half."""
        return np.array([second(shipped if p.row in measurement_rows else swapped)([p])[0]
                         for p in ps], bool)

    figures = {
        "margin": shipped, "swapped_margin": swapped,
        "measurement_half": report(measurement, {
            "second_opinion": second(shipped), "naive_bayes_ticket": naive_bayes,
            "either": either}, oos),
        "swapped_halves": report(validation, {
            "second_opinion": second(swapped)}, oos),
        "whole_fold_cross_fitted": report(banking, {"second_opinion": cross_fitted}, oos),
        "ms_per_ticket": _latency(reader, [data.texts[p.row] for p in measurement]),
    }
    print(json.dumps(figures, indent=1) if args.json else _table(figures))


def _clinc_texts(oos: list[Prediction]) -> dict[tuple[int, str], str]:
    from build_second_opinion import DATA

    clinc = json.loads((DATA / "clinc150/data.json").read_text("utf-8"))
    splits = {"clinc150_val": "val", "clinc150_oos_val": "oos_val"}
    return {(p.row, p.source): clinc[splits[p.source]][p.row][0] for p in oos}


def _latency(reader: SecondOpinionModel, texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        reader.read(text, "card_arrival")
    return round((time.perf_counter() - start) * 1000 / len(texts), 4)


def _table(figures: dict[str, object]) -> str:
    lines = [f"margin (shipped, chosen on the validation half): {figures['margin']}; "
             f"swapped-halves margin: {figures['swapped_margin']}; "
             f"{figures['ms_per_ticket']} ms per ticket"]
    for part in ("measurement_half", "swapped_halves", "whole_fold_cross_fitted"):
        block = figures[part]
        assert isinstance(block, dict)
        for check, numbers in block.items():
            lines.append(f"\n[{part}] {check}")
            for key, value in numbers.items():
                lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
