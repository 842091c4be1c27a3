"""Write the calibration set that `pinworks policy calibrate` reads: predictions on tickets the
classifier that made them never trained on.

Two parts (the public test splits are never read; they are not even in `data/`):

- BANKING77 train, out of fold. The CV folds of `fold_assignment` (5 folds, seed 0,
  over BANKING77 train + the CLINC150 negatives, as training uses them); for each fold a whole
  artifact is trained by `train_model` on the other folds' rows and the held-out fold's
  BANKING77 rows go through `IntentModel.predict`, the platform's inference path. The shipped
  artifact's recipe fine-tunes one sentence encoder per fold (`tools/finetune_encoder.py`, torch,
  ~6 min a run) and those fold encoders are not kept, so this uses the *pretrained-encoder*
  recipe (`train_model` without `finetuned_dir`): a proxy of the shipped model, slightly weaker,
  with confidences calibrated the same way (isotonic, fitted out of fold).
- CLINC150 `val` + `oos_val` (minus the banking intents training leaves out): the shipped
  artifact's own predictions; it trained on CLINC150 `train`/`oos_train` only. Every one of these
  tickets is out of scope.

    .venv/bin/python services/classifier/tools/calibration_set.py --work /tmp/calibration-work

writes `data/calibration/predictions.csv` (one row per ticket: source, row in that source, true
label, predicted intent, confidence, out-of-scope flag, fold). Texts are not copied: the row
number points into `data/banking77/train.csv` or the `data/clinc150/data.json` split.
Each fold's predictions are kept in `--work` so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pinworks_classifier.model import IntentModel, default_artifact_dir
from pinworks_classifier.model.data import CLINC_BANKING_INTENTS, load_training_data, read_labelled_csv
from pinworks_classifier_training.config import TrainConfig
from pinworks_classifier_training.folds import fold_assignment
from pinworks_classifier_training.pipeline import train_model

DATA = Path(__file__).resolve().parents[1] / "data"
OUT = DATA / "calibration" / "predictions.csv"
COLUMNS = ["source", "row", "label", "intent", "confidence", "out_of_scope", "fold"]
CLINC_SPLITS = {"clinc150_val": "val", "clinc150_oos_val": "oos_val"}


def fold_data_dir(data_dir: Path, folds: list[int], k: int, target: Path) -> None:
    """A copy of the training data without fold k (both its BANKING77 and CLINC150 rows)."""
    texts, labels = read_labelled_csv(data_dir / "banking77" / "train.csv")
    (target / "banking77").mkdir(parents=True, exist_ok=True)
    (target / "clinc150").mkdir(parents=True, exist_ok=True)
    shutil.copy(data_dir / "banking77" / "categories.json", target / "banking77" / "categories.json")
    with (target / "banking77" / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows((t, c) for i, (t, c) in enumerate(zip(texts, labels, strict=True)) if folds[i] != k)
    clinc = json.loads((data_dir / "clinc150" / "data.json").read_text("utf-8"))
    index = len(texts)  # the combined training order of load_training_data
    kept: dict[str, list[Any]] = {"val": clinc.get("val", []), "oos_val": clinc.get("oos_val", [])}
    for split in ("train", "oos_train"):
        kept[split] = []
        for pair in clinc.get(split, []):
            if pair[1] in CLINC_BANKING_INTENTS:
                continue
            if folds[index] != k:
                kept[split].append(pair)
            index += 1
    (target / "clinc150" / "data.json").write_text(json.dumps(kept), "utf-8")


def rows_of(model: IntentModel, source: str, rows: list[int], texts: list[str], labels: list[str],
            fold: int | None) -> list[dict[str, Any]]:
    predictions = model.predict([texts[i] for i in rows])
    return [
        {"source": source, "row": i, "label": labels[i], "intent": p.intent,
         "confidence": f"{p.confidence:.6f}", "out_of_scope": int(p.out_of_scope),
         "fold": "" if fold is None else fold}
        for i, p in zip(rows, predictions, strict=True)
    ]


def out_of_fold(data_dir: Path, work: Path, folds_n: int, held_out: list[int]) -> list[dict[str, Any]]:
    """The BANKING77 training rows of the `held_out` folds, each predicted by an artifact
    trained without its fold."""
    train, _dev = load_training_data(data_dir)
    folds = [int(f) for f in fold_assignment(list(train.labels), folds_n, TrainConfig().seed)]
    texts, labels = read_labelled_csv(data_dir / "banking77" / "train.csv")
    out: list[dict[str, Any]] = []
    for k in held_out:
        cached = work / f"fold-{k}.json"
        if not cached.is_file():
            started = time.perf_counter()
            fold_dir = work / f"fold-{k}"
            fold_data_dir(data_dir, folds, k, fold_dir / "data")
            train_model(fold_dir / "data", fold_dir / "artifact", TrainConfig(folds=folds_n),
                        log=lambda line, k=k: print(f"[fold {k}] {line}", flush=True))
            model = IntentModel.load(fold_dir / "artifact", encoder_threads=2)
            held_out = [i for i in range(len(texts)) if folds[i] == k]
            rows = rows_of(model, "banking77_train", held_out, texts, labels, k)
            cached.write_text(json.dumps(rows), "utf-8")
            shutil.rmtree(fold_dir)
            print(f"fold {k}: {len(rows)} rows in {time.perf_counter() - started:.0f}s", flush=True)
        out += json.loads(cached.read_text("utf-8"))
    return out


def clinc_held_out(data_dir: Path) -> list[dict[str, Any]]:
    """The shipped artifact's predictions on CLINC150 val/oos_val (all out of scope)."""
    model = IntentModel.load(default_artifact_dir(), encoder_threads=2)
    clinc = json.loads((data_dir / "clinc150" / "data.json").read_text("utf-8"))
    out: list[dict[str, Any]] = []
    for source, split in CLINC_SPLITS.items():
        pairs = clinc.get(split, [])
        rows = [i for i, (_text, intent) in enumerate(pairs) if intent not in CLINC_BANKING_INTENTS]
        texts = [text for text, _intent in pairs]
        out += rows_of(model, source, rows, texts, ["oos"] * len(pairs), None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, required=True, help="Per-fold results (resumable).")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--folds", type=int, default=TrainConfig().folds)
    parser.add_argument("--held-out", type=int, nargs="+", default=None, metavar="K",
                        help="Only these folds' rows (each fold trains one artifact); default: all.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    held_out = args.held_out if args.held_out is not None else list(range(args.folds))
    rows = out_of_fold(args.data, args.work, args.folds, held_out) + clinc_held_out(args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
