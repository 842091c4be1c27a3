"""End-to-end: train on a tiny synthetic dataset into a tmp dir, load it, evaluate it via the CLI."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from pinworks_classifier.model import IntentModel
from pinworks_classifier.model.data import data_sha256, load_training_data
from pinworks_classifier.model.encoder import (
    STATIC_FILE,
    TOKENIZER_FILE,
    SentenceEncoder,
    encoder_sha256,
    shipped_encoder_dir,
)
from pinworks_classifier_training.cli import classifier_app
from pinworks_classifier_training.config import TrainConfig
from pinworks_classifier_training.finetuned import CLASSIFIER_FILE, FINETUNED_ENCODER, FINETUNED_FORMAT
from pinworks_classifier_training.folds import fold_assignment, fold_assignment_sha256
from pinworks_classifier_training.pipeline import train_model

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
        ["train", "--data-dir", str(data), "--out", str(out), "--folds", "2", "--head-weight", "0.6"],
    )
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    return out


def test_train_writes_loadable_pickle_free_artifact(trained: Path) -> None:
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["head.npz", "manifest.json", "neighbours.npz", "vocab.json", "weights.npz"]
    with np.load(trained / "weights.npz", allow_pickle=False) as npz:
        assert npz["w_q"].dtype == np.int8
    with np.load(trained / "head.npz", allow_pickle=False) as npz:
        assert npz["h_w1"].shape == (384, 768)
    model = IntentModel.load(trained)
    assert model.is_cascade
    assert model.intents == tuple(TEMPLATES)
    assert model.version.startswith("intent-cascade-")
    cascade = model.manifest["model"]["cascade"]
    assert cascade["encoder"]["sha256"] == encoder_sha256(shipped_encoder_dir())
    stages = model.manifest["metrics"]["stages"]
    assert set(stages) == {"linear_only", "blend_everywhere", "cascade"}
    assert model.manifest["parameters"]["folds"] == 2
    assert model.manifest["parameters"]["cascade"]["head_weight"] == 0.6
    assert cascade["blend"]["head_weight"] == 0.6
    assert model.manifest["metrics"]["banking77_cv"]["in_scope"]["n"] == 144


def test_trained_model_separates_intents_and_oos(trained: Path) -> None:
    model = IntentModel.load(trained)
    preds = model.predict(["my card has not arrived", "how do i change my pin", "set an alarm"])
    assert [p.intent for p in preds[:2]] == ["card_arrival", "change_pin"]
    assert [p.out_of_scope for p in preds] == [False, False, True]


def test_unsure_texts_take_the_second_stage(trained: Path) -> None:
    model = IntentModel.load(trained)
    batch = model.score(["my card has not arrived today", "set an alarm today"])
    assert batch.escalated.tolist() == [False, True]
    assert batch.flagged.tolist() == [False, True]


def test_an_encoder_other_than_the_trained_one_is_refused(trained: Path, tmp_path: Path) -> None:
    art = tmp_path / "artifact"
    shutil.copytree(trained, art)
    shutil.copytree(shipped_encoder_dir(), art / "encoder")
    (art / "encoder" / "tokenizer.json").write_text((art / "encoder" / "tokenizer.json").read_text() + "\n")
    with pytest.raises(ValueError, match="encoder"):
        IntentModel.load(art)


def test_an_artifact_can_bundle_its_encoder(trained: Path, tmp_path: Path) -> None:
    art = tmp_path / "artifact"
    shutil.copytree(trained, art)
    shutil.copytree(shipped_encoder_dir(), art / "encoder")
    assert IntentModel.load(art).predict(["set an alarm today"])[0].out_of_scope


def test_the_artifact_keeps_its_neighbour_memory(trained: Path) -> None:
    model = IntentModel.load(trained)
    rows = model.manifest["training_data"]["rows"]
    with np.load(trained / "neighbours.npz", allow_pickle=False) as npz:
        assert npz["m_emb_q"].dtype == np.int8
        assert npz["m_emb_q"].shape == (rows, 384)
        labels = npz["m_labels"]
    assert set(labels.tolist()) == set(range(len(TEMPLATES) + 1)), "every intent and oos"
    assert model.manifest["model"]["format"] == "pinworks-intent-cascade/2"
    assert model.manifest["model"]["cascade"]["neighbours"]["k"] == 10
    cascade = model.manifest["metrics"]["stages"]["cascade"]
    assert "selective_accuracy_at_80_top_probability" in cascade


def test_a_changed_neighbour_memory_is_refused(trained: Path, tmp_path: Path) -> None:
    art = tmp_path / "artifact"
    shutil.copytree(trained, art)
    with np.load(art / "neighbours.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["m_labels"] = np.roll(arrays["m_labels"], 1)
    np.savez_compressed(art / "neighbours.npz", **arrays)
    with pytest.raises(ValueError, match="does not match"):
        IntentModel.load(art)


def test_without_neighbours_the_cascade_keeps_its_first_format(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "plain"
    manifest = train_model(data, out, TrainConfig(folds=2, neighbours_k=0), log=lambda _m: None)
    assert manifest["model"]["format"] == "pinworks-intent-cascade/1"
    assert not (out / "neighbours.npz").exists()
    model = IntentModel.load(out)
    assert model.predict(["my card has not arrived today"])[0].intent == "card_arrival"
    assert model.predict(["set an alarm today"])[0].out_of_scope


def test_linear_only_training_still_works(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    manifest = train_model(
        data, tmp_path / "linear", TrainConfig(folds=2, cascade=False), log=lambda _m: None
    )
    assert manifest["version"].startswith("intent-svm-")
    model = IntentModel.load(tmp_path / "linear")
    assert not model.is_cascade
    assert not model.score(["my card has not arrived"]).escalated.any()
    assert model.predict(["set an alarm"])[0].out_of_scope


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


def _finetuned_layout(root: Path, data: Path, folds: int = 2, seed: int = 0) -> Path:
    """The layout tools/finetune_encoder.py writes. Fine-tuning needs torch, so every slot holds
    the pretrained encoder and a softmax layer fitted on that slot's training rows only; what
    training must get right is which slot scores what."""
    from sklearn.linear_model import LogisticRegression

    train, _dev = load_training_data(data)
    labels = [*TEMPLATES, "oos"]
    y = np.asarray([labels.index(v) for v in train.labels])
    embeddings = SentenceEncoder(shipped_encoder_dir()).encode(train.texts)
    assignment = fold_assignment(list(train.labels), folds, seed)
    for k, name in [*((k, f"fold-{k}") for k in range(folds)), (-1, "final")]:
        shutil.copytree(shipped_encoder_dir(), root / name)
        rows = assignment != k
        layer = LogisticRegression(C=10.0, max_iter=500).fit(embeddings[rows], y[rows])
        np.savez(
            root / name / CLASSIFIER_FILE,
            weight=layer.coef_.T.astype(np.float32),
            bias=layer.intercept_.astype(np.float32),
            labels=np.asarray(labels),
        )
    manifest = {
        "format": FINETUNED_FORMAT,
        "training_data_sha256": data_sha256(data),
        "folds": folds,
        "seed": seed,
        "fold_assignment_sha256": fold_assignment_sha256(assignment),
        "parameters": {"epochs": 3, "freeze": 3},
        "runs": {},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_finetuned_encoders_embed_their_own_fold_and_the_final_one_is_bundled(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    encoders = _finetuned_layout(tmp_path / "finetuned", data)
    lines: list[str] = []
    manifest = train_model(
        data, tmp_path / "art", TrainConfig(folds=2), log=lines.append, finetuned_dir=encoders
    )
    embedded_with = [line.split(" with ")[1].split()[0] for line in lines if line.startswith("embedded")]
    # the final encoder embeds the neighbour memory (its softmax layer needs no fitting); each
    # fold's encoder scores its held-out rows, then embeds that fold's memory
    assert embedded_with == ["final", "fold-0", "fold-1", "fold-0", "fold-1"]
    train, _dev = load_training_data(data)
    expected = SentenceEncoder(encoders / "final").encode(train.texts)
    with np.load(tmp_path / "art" / "neighbours.npz", allow_pickle=False) as npz:
        memory = npz["m_emb_q"] * npz["m_emb_scale"][:, None]
    np.testing.assert_allclose(memory, expected, atol=float(np.abs(expected).max()) / 127)
    bundled = tmp_path / "art" / "encoder"
    assert sorted(p.name for p in bundled.iterdir()) == [
        "LICENSE", "README.md", "finetune.json", "model.onnx", "tokenizer.json"
    ]  # fmt: skip
    cascade = manifest["model"]["cascade"]
    assert cascade["encoder"] == {"name": FINETUNED_ENCODER, "sha256": encoder_sha256(encoders / "final")}
    assert cascade["hidden"] == 0
    with (
        np.load(tmp_path / "art" / "head.npz", allow_pickle=False) as npz,
        np.load(encoders / "final" / CLASSIFIER_FILE, allow_pickle=False) as final,
    ):
        assert np.array_equal(npz["h_w2"], final["weight"])
    assert manifest["parameters"]["cascade"]["finetuned"] == {"epochs": 3, "freeze": 3}
    model = IntentModel.load(tmp_path / "art")
    assert model.predict(["set an alarm today"])[0].out_of_scope
    shutil.rmtree(bundled)
    with pytest.raises(ValueError, match="neither bundled"):
        IntentModel.load(tmp_path / "art")  # no shipped encoder of that name to fall back on


def _relabel(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["labels"] = arrays["labels"][::-1]
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m, _root: m.update(training_data_sha256={"x.csv": "0" * 64}), "other training data"),
        (lambda m, _root: m.update(fold_assignment_sha256="0" * 64), "folds"),
        (lambda m, _root: m.update(seed=1), "seed 1"),
        (lambda _m, root: shutil.rmtree(root / "final"), "missing encoders"),
        (lambda m, _root: m.update(format="something/else"), "unsupported format"),
        (lambda _m, root: (root / "fold-1" / CLASSIFIER_FILE).unlink(), "missing encoders"),
        (lambda _m, root: _relabel(root / "fold-0" / CLASSIFIER_FILE), "other labels"),
    ],
)
def test_finetuned_encoders_for_other_data_or_folds_are_refused(
    tmp_path: Path, change: Callable[[dict[str, Any], Path], None], message: str
) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    encoders = _finetuned_layout(tmp_path / "finetuned", data)
    manifest = json.loads((encoders / "manifest.json").read_text())
    change(manifest, encoders)
    (encoders / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(
        classifier_app,
        ["train", "--data-dir", str(data), "--out", str(tmp_path / "art"), "--folds", "2",
         "--finetuned", str(encoders)],
    )  # fmt: skip
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "art").exists()


def test_a_static_encoder_can_take_the_transformers_place(tmp_path: Path) -> None:
    """`train --encoder NAME` with a static encoder (tools/distill_static.py's layout): the
    head, the memory and the hash are over its vectors, and the artifact loads it bundled."""
    static = tmp_path / "static"
    static.mkdir()
    shutil.copyfile(shipped_encoder_dir() / TOKENIZER_FILE, static / TOKENIZER_FILE)
    table = np.random.default_rng(1).normal(size=(30522, 16)).astype(np.float32)
    np.savez(static / STATIC_FILE, embeddings=table)
    data = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "artifact"
    cfg = TrainConfig(folds=2, encoder="static-test")
    manifest = train_model(data, out, cfg, log=lambda _m: None, encoder_dir=static)
    encoder = manifest["model"]["cascade"]["encoder"]
    assert encoder == {"name": "static-test", "sha256": encoder_sha256(static)}
    with pytest.raises(ValueError, match="static-test"):
        IntentModel.load(out)  # neither bundled nor shipped
    shutil.copytree(static, out / "encoder")
    model = IntentModel.load(out)
    with np.load(out / "head.npz", allow_pickle=False) as npz:
        assert npz["h_w1"].shape[0] == 16
    batch = model.score(["set an alarm today", "my card has not arrived today"])
    assert batch.escalated[0] and batch.flagged[0]
    assert model.predict(["my card has not arrived today"])[0].intent == "card_arrival"
