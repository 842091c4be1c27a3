"""Write the calibration set that `pinworks policy calibrate` reads: predictions on tickets the
classifier that made them never trained on.

Two parts (the public test splits are never read; they are not even in `data/`):

- BANKING77 train, out of fold: every row of the `--held-out` CV folds (default all five) of
  `fold_assignment` (5 folds, seed 0, over BANKING77 train + the CLINC150 negatives, as training
  uses them), each predicted through `IntentModel.predict` by an artifact that never saw it.
  - With `--finetuned DIR`: the shipped artifact's recipe, read from its manifest (fine-tuned
    encoder per fold, `--head-weight 0.7`, neighbour vote, confidence model). DIR holds the fold
    encoders of `tools/finetune_encoder.py --freeze 0 --only 0,1,2,3,4` (the shipped encoders'
    parameters; checked); the `final` one is not needed. For fold k,
    `pinworks_classifier_training.held_out` assembles an artifact from fold k's linear stage,
    fine-tuned encoder, softmax layer and a neighbour memory of the other folds' rows, with every
    calibration step (temperatures, isotonic maps, escalation cut, OOS thresholds, confidence
    model) fitted by training's `evaluate_cv` on the other folds' out-of-fold scores only. The
    CV itself is `pinworks classifier train --finetuned DIR --head-weight 0.7`'s; the one
    approximation is that those other folds' scores come from the 5-fold CV's models (which
    trained on fold k's rows) rather than from a nested CV.
  - Without it: the *pretrained-encoder* recipe (`train_model` without `finetuned_dir`, one whole
    artifact trained per fold on the other folds' rows): a weaker proxy of the shipped model.
- CLINC150 `val` + `oos_val` (minus the banking intents training leaves out): the shipped
  artifact's own predictions; it trained on CLINC150 `train`/`oos_train` only. Every one of these
  tickets is out of scope.

    # torch venv /tmp/encoder-build as in MODEL.md, "Reproducing the shipped artifact"
    /tmp/encoder-build/bin/python services/classifier/tools/finetune_encoder.py \
        --out /tmp/finetuned --freeze 0 --only 0,1,2,3,4
    .venv/bin/python services/classifier/tools/calibration_set.py \
        --finetuned /tmp/finetuned --work /tmp/calibration-work

writes `data/calibration/predictions.csv` (one row per ticket: source, row in that source, true
label, predicted intent, confidence, out-of-scope flag, fold) and prints accuracy, selective
accuracy at 80% coverage, OOS recall and the wrong-answer rate by coverage. Texts are not
copied: the row number points into `data/banking77/train.csv` or the `data/clinc150/data.json`
split. Each fold's predictions (and each fold encoder's embeddings) are kept in `--work` so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinworks_classifier.model import IntentModel, default_artifact_dir
from pinworks_classifier.model.data import CLINC_BANKING_INTENTS, load_training_data, read_labelled_csv
from pinworks_classifier_training.config import TrainConfig
from pinworks_classifier_training.folds import fold_assignment
from pinworks_classifier_training.held_out import CrossFitted, recipe_of
from pinworks_classifier_training.pipeline import train_model

DATA = Path(__file__).resolve().parents[1] / "data"
OUT = DATA / "calibration" / "predictions.csv"
COLUMNS = ["source", "row", "label", "intent", "confidence", "out_of_scope", "fold"]
CLINC_SPLITS = {"clinc150_val": "val", "clinc150_oos_val": "oos_val"}
COVERAGES = (0.7, 0.75, 0.8, 0.85, 0.9)


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


def fold_log(k: int) -> Callable[[str], None]:
    return lambda line: print(f"[fold {k}] {line}", flush=True)


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
                        log=fold_log(k))
            model = IntentModel.load(fold_dir / "artifact", encoder_threads=2)
            held_out = [i for i in range(len(texts)) if folds[i] == k]
            rows = rows_of(model, "banking77_train", held_out, texts, labels, k)
            cached.write_text(json.dumps(rows), "utf-8")
            shutil.rmtree(fold_dir)
            print(f"fold {k}: {len(rows)} rows in {time.perf_counter() - started:.0f}s", flush=True)
        out += json.loads(cached.read_text("utf-8"))
    return out


def shipped_recipe(encoders: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The shipped artifact's training configuration, and its manifest; refuses fold encoders
    fine-tuned with other parameters than the shipped final one."""
    manifest = json.loads((default_artifact_dir() / "manifest.json").read_text("utf-8"))
    wanted = manifest["parameters"]["cascade"]["finetuned"]
    found = json.loads((encoders / "manifest.json").read_text("utf-8"))["parameters"]
    if found != wanted:
        raise SystemExit(f"{encoders}: fine-tuned with {found}, the shipped recipe is {wanted}")
    return recipe_of(manifest), manifest


def finetuned_out_of_fold(
    data_dir: Path, encoders: Path, work: Path, held_out: list[int]
) -> list[dict[str, Any]]:
    """The BANKING77 training rows of the `held_out` folds, each predicted by its fold's
    held-out artifact of the shipped recipe (`held_out.CrossFitted`)."""
    cfg, manifest = shipped_recipe(encoders)
    texts, labels = read_labelled_csv(data_dir / "banking77" / "train.csv")
    fitted: CrossFitted | None = None
    out: list[dict[str, Any]] = []
    for k in held_out:
        cached = work / f"finetuned-fold-{k}.json"
        if not cached.is_file():
            started = time.perf_counter()
            if fitted is None:
                fitted = CrossFitted.run(data_dir, encoders, cfg, work / "embeddings", print_line)
                print_cv(fitted.metrics(), manifest["metrics"])
            model = fitted.model_without(k, work / f"finetuned-artifact-{k}")
            rows = [int(i) for i in fitted.fold_rows(k) if i < len(texts)]  # BANKING77 rows come first
            cached.write_text(json.dumps(rows_of(model, "banking77_train", rows, texts, labels, k)), "utf-8")
            shutil.rmtree(work / f"finetuned-artifact-{k}")
            print(f"fold {k}: {len(rows)} rows in {time.perf_counter() - started:.0f}s", flush=True)
        out += json.loads(cached.read_text("utf-8"))
    return out


def print_line(line: str) -> None:
    print(line, flush=True)


def print_cv(rebuilt: dict[str, Any], shipped: dict[str, Any]) -> None:
    """The rebuilt CV's figures as training reports them, beside the shipped artifact's."""
    for name, metrics in (("rebuilt", rebuilt), ("shipped", shipped)):
        cascade = metrics["stages"]["cascade"]
        print(f"CV as training reports it ({name}): accuracy {cascade['accuracy']:.2%}, "
              f"selective@80 {cascade['selective_accuracy_at_80']:.2%}, escalated "
              f"{cascade['escalated_share_in_scope']:.1%}", flush=True)  # fmt: skip


def wrong_rate_at(confidence: list[float], wrong: list[bool], coverage: float) -> float:
    """Share wrong among the `coverage` most confident rows (ties in file order)."""
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    kept = order[: max(1, round(coverage * len(order)))]
    return sum(wrong[i] for i in kept) / len(kept)


def print_checks(rows: list[dict[str, Any]]) -> None:
    """Accuracy and selective accuracy of the BANKING77 rows, OOS recall of the CLINC150 ones."""
    bank = [r for r in rows if r["source"] == "banking77_train"]
    if bank:
        wrong = [r["intent"] != r["label"] for r in bank]
        confidence = [float(r["confidence"]) for r in bank]
        print(f"banking77_train: {len(bank)} rows, accuracy {1 - sum(wrong) / len(bank):.2%}, selective@80 "
              f"{1 - wrong_rate_at(confidence, wrong, 0.8):.2%}, flagged out of scope "
              f"{sum(int(r['out_of_scope']) for r in bank) / len(bank):.2%}")  # fmt: skip
        print("  wrong-answer rate of the most confident: " + ", ".join(
            f"{c:.0%} {wrong_rate_at(confidence, wrong, c):.2%}" for c in COVERAGES))  # fmt: skip
    for source in CLINC_SPLITS:
        part = [int(r["out_of_scope"]) for r in rows if r["source"] == source]
        if part:
            print(f"{source}: {len(part)} rows, OOS recall {sum(part) / len(part):.2%}")


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
    parser.add_argument("--finetuned", type=Path, default=None, metavar="DIR",
                        help="Fold encoders of tools/finetune_encoder.py: the shipped recipe "
                             "(default: the pretrained-encoder proxy).")  # fmt: skip
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    held_out = args.held_out if args.held_out is not None else list(range(args.folds))
    if args.finetuned is not None:
        bank = finetuned_out_of_fold(args.data, args.finetuned, args.work, held_out)
    else:
        bank = out_of_fold(args.data, args.work, args.folds, held_out)
    rows = bank + clinc_held_out(args.data)
    print_checks(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
