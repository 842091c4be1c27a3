"""Held-out artifacts of the fine-tuned recipe (held_out.py): fold k's artifact is assembled and
calibrated from the other folds' rows only, and predicts through `IntentModel`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pinworks_classifier.model import default_artifact_dir
from pinworks_classifier.model.features import FeatureConfig
from pinworks_classifier_training.config import TrainConfig
from pinworks_classifier_training.held_out import CrossFitted, recipe_of
from pinworks_classifier_training.pipeline import train_model

from .test_training import _finetuned_layout, write_tiny_dataset

FOLDS = 3


def _scramble(cv: dict, rows: np.ndarray) -> None:
    """Give `rows` other rows' out-of-fold scores (of both stages and the votes), in place."""
    source = np.roll(rows, 1)
    for key in ("oof", "head_oof"):
        cv[key][rows] = cv[key][source]
    for array in (cv["votes_oof"].labels, cv["votes_oof"].weights, cv["votes_oof"].probs):
        array[rows] = array[source]


def test_a_folds_artifact_never_sees_its_rows_and_predicts_through_the_model(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    encoders = _finetuned_layout(tmp_path / "finetuned", data, folds=FOLDS)
    (encoders / "final").rename(tmp_path / "final-not-needed")
    lines: list[str] = []
    cfg = TrainConfig(folds=FOLDS)
    fitted = CrossFitted.run(data, encoders, cfg, tmp_path / "cache", lines.append)
    assert [line.split(" with ")[1].split()[0] for line in lines if line.startswith("embedded")] == [
        f"fold-{k}" for k in range(FOLDS)
    ]
    held_out = fitted.fold_rows(0)
    model = fitted.model_without(0, tmp_path / "without-0")
    with np.load(tmp_path / "without-0" / "neighbours.npz", allow_pickle=False) as npz:
        assert len(npz["m_emb_q"]) == len(fitted.train.texts) - len(held_out)
    texts = [fitted.train.texts[i] for i in held_out]
    predictions = model.predict(texts)
    truth = [fitted.train.labels[i] for i in held_out]
    correct = [p.intent == t for p, t in zip(predictions, truth, strict=True) if t != "oos"]
    assert np.mean(correct) > 0.8

    other = fitted.model_without(1, tmp_path / "without-1")
    _scramble(fitted.cv, held_out)
    # fold 0's scores never reach its own artifact; they do calibrate the other folds' ones
    assert fitted.model_without(0, tmp_path / "again-0").version == model.version
    assert fitted.model_without(1, tmp_path / "again-1").version != other.version

    lines.clear()
    CrossFitted.run(data, encoders, cfg, tmp_path / "cache", lines.append)
    assert not [line for line in lines if line.startswith("embedded")]  # cached


def test_the_recipe_is_read_back_from_the_manifest(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(
        folds=2, C=0.5, max_in_scope_false_alarm=0.01, head_weight=0.6, escalate_share=0.3,
        neighbours_k=5, neighbours_temperature=10.0, neighbours_background=0.7,
        neighbours_weight=0.4, neighbours_floor=0.05, features=FeatureConfig(char_max_n=4),
    )  # fmt: skip
    manifest = train_model(data, tmp_path / "art", cfg, log=lambda _line: None)
    assert recipe_of(manifest) == cfg
    shipped = json.loads((default_artifact_dir() / "manifest.json").read_text())
    assert recipe_of(shipped).head_weight == 0.7
