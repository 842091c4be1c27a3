"""Out-of-fold predictions of the fine-tuned-encoder recipe with every calibration step
cross-fitted, for the error budget's calibration set (`tools/calibration_set.py --finetuned`).

For CV fold k (training's folds), an artifact is assembled from parts that never saw fold k's
rows: the fold's TF-IDF + SVM stage and its fine-tuned encoder with the softmax layer it was
fine-tuned with (both fitted on the other folds' rows, as the CV fits them), a neighbour memory
of the other folds' rows under that encoder, and a calibration (temperatures, isotonic maps,
escalation cut, OOS thresholds, confidence model) fitted by training's own `evaluate_cv` on the
other folds' out-of-fold scores only. Fold k's rows then go through `IntentModel.predict`, the
platform's inference path, so each gets what an artifact without it returns.

This is not the artifact `train_model` would write from the other folds' rows: that one would
calibrate on a nested CV (four more fine-tuned encoders per fold). Here the other folds'
out-of-fold scores come from the 5-fold CV's models, which trained on fold k's rows; no row's
label or score reaches the calibration that scores it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_classifier.model import IntentModel
from pinworks_classifier.model import artifact as _artifact
from pinworks_classifier.model.core import NeighbourVotes, head_scores
from pinworks_classifier.model.data import OOS_LABEL, Dataset, load_intents, load_training_data
from pinworks_classifier.model.encoder import MODEL_FILE, TOKENIZER_FILE, encoder_sha256
from pinworks_classifier.model.features import FeatureConfig

from .config import CASCADE_VERSION_PREFIX, TrainConfig
from .cv_metrics import evaluate_cv
from .estimators import fit_linear
from .finetuned import FINETUNED_ENCODER, FinetunedEncoders
from .folds import cross_validate, embed_texts, neighbour_cv
from .pipeline import Embeddings, final_head

NO_ROWS = Dataset([], [], [])


def recipe_of(manifest: dict[str, Any]) -> TrainConfig:
    """The training configuration an artifact's manifest records (its recipe)."""
    p = manifest["parameters"]
    cascade = p["cascade"]
    votes = cascade["neighbours"]
    return TrainConfig(
        features=FeatureConfig(**p["features"]), C=p["C"], class_weight=p["class_weight"],
        folds=p["folds"], seed=p["seed"], max_in_scope_false_alarm=p["max_in_scope_false_alarm"],
        isotonic=p["isotonic"], encoder=cascade["encoder"], head_weight=cascade["head_weight"],
        escalate_share=cascade["escalate_share"], neighbours_k=votes["k"],
        neighbours_temperature=votes["temperature"], neighbours_background=votes["background_similarity"],
        neighbours_weight=votes["vote_weight"], neighbours_floor=votes["vote_floor"],
    )  # fmt: skip


def fold_embedder(
    encoders: FinetunedEncoders, texts: list[str], cache: Path, log: Callable[[str], None]
) -> Callable[[int], np.ndarray]:
    """Every training text embedded by fold k's encoder, kept in `cache` (keyed by the
    encoder's hash) so that a second run, or an interrupted one, embeds nothing twice."""

    def embed(k: int) -> np.ndarray:
        fold_dir = encoders.fold_dir(k)
        path = cache / f"embeddings-{fold_dir.name}-{encoder_sha256(fold_dir)[:16]}.npy"
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path.with_suffix(".tmp.npy"), embed_texts(fold_dir, [texts], log)[0])
            path.with_suffix(".tmp.npy").rename(path)
        return np.load(path)

    return embed


def subset(cv: dict[str, Any], train: Dataset, rows: np.ndarray) -> tuple[Dataset, dict[str, Any]]:
    """The training rows `rows` and their out-of-fold scores, as `evaluate_cv` takes them."""
    votes = cv["votes_oof"]
    scores = {
        **cv,
        "oof": cv["oof"][rows],
        "head_oof": cv["head_oof"][rows],
        "folds": cv["folds"][rows],
        "votes_oof": NeighbourVotes(*(getattr(votes, f.name)[rows] for f in fields(NeighbourVotes))),
    }
    data = Dataset(*([getattr(train, f.name)[i] for i in rows] for f in fields(Dataset)))
    return data, scores


@dataclass
class CrossFitted:
    """The CV of the fine-tuned recipe (out-of-fold scores of both stages and the votes),
    from which each fold's held-out artifact is assembled."""

    train: Dataset
    cfg: TrainConfig
    encoders: FinetunedEncoders
    embed: Callable[[int], np.ndarray]
    cv: dict[str, Any]

    @classmethod
    def run(
        cls, data_dir: Path, encoders_root: Path, cfg: TrainConfig, cache: Path, log: Callable[[str], None]
    ) -> CrossFitted:
        """Cross-validate as `train_model --finetuned` does (no dev set: it is not scored)."""
        cfg = replace(cfg, encoder=FINETUNED_ENCODER)
        train, _dev = load_training_data(data_dir)
        intents = load_intents(data_dir)
        labels = [*intents, OOS_LABEL]
        encoders = FinetunedEncoders.open(
            encoders_root, data_dir, list(train.labels), labels, cfg, final=False
        )
        embed = fold_embedder(encoders, list(train.texts), cache, log)

        def second_stage(k: int, _tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            head = encoders.classifier(encoders.fold_dir(k))
            return head_scores(head, embed(k)[te]), np.zeros((0, len(labels)), np.float32)

        cv = cross_validate(train, NO_ROWS, intents, cfg, log, second_stage)
        y_idx = np.asarray([labels.index(v) for v in train.labels])
        any_memory = embed(0)  # neighbour_cv also votes on dev rows; there are none here
        cv["votes_oof"], _ = neighbour_cv(
            cfg, embed, (any_memory, any_memory[:0]), y_idx, cv["folds"], len(labels)
        )
        return cls(train, cfg, encoders, embed, cv)

    def metrics(self) -> dict[str, Any]:
        """The CV figures as training reports them (calibration fitted on every fold)."""
        return evaluate_cv(self.train, NO_ROWS, self.cv, self.cfg)[0]

    def fold_rows(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.cv["folds"] == k)

    def model_without(self, k: int, out_dir: Path) -> IntentModel:
        """Write fold k's held-out artifact to `out_dir` (bundling fold k's encoder) and load it."""
        cfg, labels = self.cfg, self.cv["labels"]
        rows = np.flatnonzero(self.cv["folds"] != k)
        data, scores = subset(self.cv, self.train, rows)
        _metrics, linear, cascade = evaluate_cv(data, NO_ROWS, scores, cfg)
        if cascade is None:
            raise ValueError("the recipe has no second stage")
        fz, w, b = fit_linear(cfg, data.texts, np.asarray(data.labels), labels)
        fold_dir = self.encoders.fold_dir(k)
        y_idx = np.asarray([labels.index(v) for v in data.labels])
        memory = Embeddings(final=[self.embed(k)[rows]])
        head = final_head(cfg, cascade, self.encoders.classifier(fold_dir), fold_dir, memory, y_idx)
        art = _artifact.LinearArtifact(
            featurizer=fz, labels=labels, weights=w, bias=b, temperature=linear.temperature,
            iso_x=linear.iso[0], iso_y=linear.iso[1], oos_threshold=linear.oos_threshold, head=head,
        )  # fmt: skip
        extra = {"held_out_fold": k, "training_rows": len(rows), "recipe": "held_out.CrossFitted"}
        _artifact.save(art, out_dir, extra, CASCADE_VERSION_PREFIX)
        (out_dir / "encoder").mkdir(exist_ok=True)
        for name in (MODEL_FILE, TOKENIZER_FILE):
            shutil.copy(fold_dir / name, out_dir / "encoder" / name)
        return IntentModel.load(out_dir, encoder_threads=2)
