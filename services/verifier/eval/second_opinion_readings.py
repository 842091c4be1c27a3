"""Out-of-fold second-opinion readings of every calibration ticket, beside the classifier's.

    .venv/bin/python services/verifier/eval/second_opinion_readings.py   # ~2 min, deterministic

Writes `services/classifier/data/calibration/second_opinion.csv`, one row per row of
`predictions.csv` in its order: what the verifier's second reader (complement naive Bayes,
`pinworks_verifier.second_opinion`) makes of the ticket, read by a reader that never trained on
it. Recipe:

- Folds: the classifier's (`pinworks_classifier_training.folds.fold_assignment`: 5 stratified
  folds, seed 0), checked against the `fold` column predictions.csv records for every BANKING77
  row; the tool refuses to run when they differ.
- One reader per fold, trained (`second_opinion_training.train_reader`, alpha 0.3, min_df 2) on
  every BANKING77 train row outside that fold; each BANKING77 row is read by its own fold's
  reader (`reader` = the fold). CLINC150 val/oos_val rows are read by a reader trained on every
  BANKING77 train row (`reader` = `all`); no reader saw them.
- `gap`: how far the intent the classifier gave the ticket (`intent`, copied from
  predictions.csv so a stale file is detected) trails the reader's best intent, in
  log-likelihood units (0 when they agree); `best`: the reader's best intent. The verifier's
  check escalates an answer when `gap >= margin`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_second_opinion import CALIBRATION, DATA, banking77_folds, calibration_rows  # noqa: E402

from pinworks_verifier.second_opinion_training import Query, out_of_fold_readings  # noqa: E402

OUT = CALIBRATION.parent / "second_opinion.csv"
COLUMNS = ["source", "row", "intent", "reader", "best", "gap"]
CLINC_SPLITS = {"clinc150_val": "val", "clinc150_oos_val": "oos_val"}


def main() -> None:
    data = banking77_folds()
    clinc = json.loads((DATA / "clinc150/data.json").read_text("utf-8"))
    predictions = calibration_rows()
    queries = [Query(data.texts[p.row], p.intent, p.row) if p.source == "banking77_train" else
               Query(clinc[CLINC_SPLITS[p.source]][p.row][0], p.intent)
               for p in predictions]
    readings = out_of_fold_readings(data.texts, data.labels, data.folds.tolist(), queries)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for p, reading in zip(predictions, readings, strict=True):
            writer.writerow([p.source, p.row, p.intent, reading.reader, reading.best,
                             f"{reading.gap:.6f}"])
    disagree = sum(r.gap > 0 for r in readings)
    print(f"wrote {OUT} ({len(readings)} rows, the reader disagrees with the classifier on "
          f"{disagree})")


if __name__ == "__main__":
    main()
