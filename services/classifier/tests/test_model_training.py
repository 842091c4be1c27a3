"""End-to-end: train on a tiny synthetic dataset into a tmp dir, load it, evaluate it via the CLI."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pinworks_classifier.cli import classifier_app
from pinworks_classifier.model import IntentModel

TEMPLATES = {
    "card_arrival": ["{p} card has not arrived {t}", "still waiting for {p} new card {t}"],
    "change_pin": ["how do i change {p} pin {t}", "i want a new pin for {p} card {t}"],
    "top_up_failed": ["{p} top up failed {t}", "the top-up to {p} account did not work {t}"],
    "exchange_rate": ["what exchange rate do you give {t}", "is {p} exchange rate fair {t}"],
}
OOS = ["what is the weather {t}", "play a song by {p} band {t}", "set an alarm {t}",
       "book a table for {p} family {t}", "tell me a joke {t}", "how do i cook rice {t}"]  # fmt: skip
FILL_P = ["my", "our", "the"]
FILL_T = ["today", "please", "again", "yet", "now", "at all"]


def _fill(template: str) -> list[str]:
    return [template.format(p=p, t=t) for p, t in itertools.product(FILL_P, FILL_T)]


def write_tiny_dataset(root: Path) -> Path:
    """Same layout as services/classifier/data, ~100 rows, so training takes a second."""
    (root / "banking77").mkdir(parents=True)
    (root / "clinc150").mkdir()
    (root / "banking77" / "categories.json").write_text(json.dumps(list(TEMPLATES)))
    with (root / "banking77" / "train.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        for intent, templates in TEMPLATES.items():
            for tpl in templates:
                w.writerows([text, intent] for text in _fill(tpl))
    oos = [[text, f"other_{i}"] for i, tpl in enumerate(OOS) for text in _fill(tpl)]
    clinc = {
        "train": oos[::2] + [["what is my account balance", "balance"]],
        "val": oos[1::4],
        "oos_train": [["who wrote hamlet", "oos"], ["how tall is everest", "oos"]],
        "oos_val": [["what time is the game on", "oos"]],
    }
    (root / "clinc150" / "data.json").write_text(json.dumps(clinc))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    data = write_tiny_dataset(root / "data")
    out = root / "artifact"
    result = CliRunner().invoke(
        classifier_app,
        ["train", "--data-dir", str(data), "--out", str(out), "--folds", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    return out


def test_train_writes_loadable_pickle_free_artifact(trained: Path) -> None:
    assert sorted(p.name for p in trained.iterdir()) == ["manifest.json", "vocab.json", "weights.npz"]
    with np.load(trained / "weights.npz", allow_pickle=False) as npz:
        assert npz["w_q"].dtype == np.int8
    model = IntentModel.load(trained)
    assert model.intents == tuple(TEMPLATES)
    assert model.version.startswith("intent-")
    assert model.manifest["parameters"]["folds"] == 2
    assert model.manifest["metrics"]["banking77_cv"]["in_scope"]["n"] == 144


def test_trained_model_separates_intents_and_oos(trained: Path) -> None:
    model = IntentModel.load(trained)
    preds = model.predict(["my card has not arrived", "how do i change my pin", "set an alarm"])
    assert [p.intent for p in preds[:2]] == ["card_arrival", "change_pin"]
    assert [p.out_of_scope for p in preds] == [False, False, True]


def test_excluded_banking_intents_of_clinc_are_not_negatives(trained: Path) -> None:
    manifest = IntentModel.load(trained).manifest
    # 6 templates x 18 fills / 2 + 2 oos_train; the CLINC "balance" row is excluded
    assert manifest["training_data"]["oos_rows"] == 54 + 2


def test_eval_writes_json_and_png(trained: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "eval.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows([["my card has not arrived yet", "card_arrival"],
                     ["what exchange rate do you give", "exchange_rate"],
                     ["tell me a joke", "oos"]])  # fmt: skip
    out = tmp_path / "report"
    result = CliRunner().invoke(
        classifier_app,
        ["eval", str(csv_path), "--artifact", str(trained), "--out", str(out),
         "--latency-samples", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    report = json.loads((out / "eval.json").read_text())
    assert report["in_scope"]["n"] == 2
    assert report["in_scope"]["accuracy"] == 1.0
    assert report["out_of_scope"]["oos_recall"] == 1.0
    assert 0.0 <= report["calibration"]["ece"] <= 1.0
    assert set(report["latency"]["single_ms"]) == {"p50", "p95", "p99"}
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_rejects_csv_without_category(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\n")
    result = CliRunner().invoke(classifier_app, ["eval", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
