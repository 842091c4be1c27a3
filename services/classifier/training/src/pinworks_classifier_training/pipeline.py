"""A training run end to end: load the data, cross-validate both stages, calibrate on the
out-of-fold rows, fit the final model on every row and write the artifact."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_classifier.model import artifact as _artifact
from pinworks_classifier.model.data import OOS_LABEL, Dataset, data_sha256, load_intents, load_training_data
from pinworks_classifier.model.encoder import encoder_sha256, shipped_encoder_dir
from pinworks_classifier.model.features import Featurizer

from .calibration import CascadeFit
from .config import CASCADE_VERSION_PREFIX, VERSION_PREFIX, TrainConfig
from .cv_metrics import evaluate_cv
from .estimators import HeadWeights, fit_head, fit_linear
from .finetuned import FINETUNED_ENCODER, FinetunedEncoders, finetuned_stage
from .folds import (
    FoldScorer,
    cross_validate,
    embed_texts,
    frozen_stage,
    memory_of,
    neighbour_cv,
    same_for_every_fold,
)

LIBRARIES_RECORDED = ("numpy", "scipy", "scikit-learn", "onnxruntime", "tokenizers")


@dataclass
class Embeddings:
    """What the second stage is cross-validated from: its per-fold scorer, the embeddings under
    the artifact's encoder (training rows, dev rows) and each fold's embeddings of the
    training rows, for the neighbour vote. Empty for a linear-only run."""

    second_stage: FoldScorer | None = None
    final: list[np.ndarray] = field(default_factory=list)
    per_fold: Callable[[int], np.ndarray] | None = None


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in LIBRARIES_RECORDED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _load(data_dir: Path, log: Callable[[str], None]) -> tuple[Dataset, Dataset, list[str]]:
    intents = load_intents(data_dir)
    train, dev = load_training_data(data_dir)
    unknown = sorted(set(train.labels) - {*intents, OOS_LABEL})
    if unknown:
        raise ValueError(f"training labels not in categories.json: {unknown[:5]}")
    log(f"training rows: {len(train)} ({sum(g == 'banking77' for g in train.groups)} in-scope)")
    return train, dev, intents


def _embeddings(
    cfg: TrainConfig, finetuned: FinetunedEncoders | None, encoder_dir: Path, data: tuple[Dataset, Dataset],
    y_idx: np.ndarray, n_labels: int, log: Callable[[str], None],
) -> Embeddings:  # fmt: skip
    train, dev = data
    if finetuned is not None:
        found = Embeddings(second_stage=finetuned_stage(finetuned, train, dev, log))
        if cfg.neighbours_k > 0:
            found.final = embed_texts(finetuned.final_dir, [train.texts, dev.texts], log)
            found.per_fold = finetuned.embedder(train.texts, log)
        return found
    if not cfg.cascade:
        return Embeddings()
    frozen = embed_texts(encoder_dir, [train.texts, dev.texts], log)
    return Embeddings(
        second_stage=frozen_stage(cfg, (frozen[0], frozen[1]), y_idx, n_labels),
        final=frozen,
        per_fold=same_for_every_fold(frozen[0]),
    )


def final_head(
    cfg: TrainConfig, cascade: CascadeFit, weights: HeadWeights, encoder_dir: Path, embedded: Embeddings,
    y_idx: np.ndarray,
) -> _artifact.EmbeddingHead:  # fmt: skip
    """The artifact's second stage: `weights` over `encoder_dir`'s embeddings, blended and
    calibrated as cross-validation fitted it, with the neighbour memory of every row."""
    return _artifact.EmbeddingHead(
        encoder=cfg.encoder,
        encoder_sha256=encoder_sha256(encoder_dir),
        input_scale=weights.input_scale,
        w1=weights.w1,
        b1=weights.b1,
        w2=weights.w2,
        b2=weights.b2,
        blend=cascade.blend,
        escalate_below=cascade.escalate_below,
        escalate_oos_at=cascade.escalate_oos_at,
        escalate_on=_artifact.ESCALATE_ON_TEMPERATURE,
        temperature=cascade.calibration.temperature,
        iso_x=cascade.calibration.iso[0],
        iso_y=cascade.calibration.iso[1],
        oos_threshold=cascade.calibration.oos_threshold,
        neighbours=None if cascade.confidence is None else memory_of(cfg, embedded.final[0], y_idx),
        confidence=cascade.confidence,
    )


def _cascade_parameters(
    cfg: TrainConfig, head: _artifact.EmbeddingHead, finetuned: FinetunedEncoders | None
) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "encoder": cfg.encoder,
        "encoder_sha256": head.encoder_sha256,
        "head": (
            "the softmax layer the encoder was fine-tuned with"
            if finetuned is not None
            else f"MLP, one ReLU layer of {cfg.head_hidden}, Adam, L2 {cfg.head_alpha}, "
            f"{cfg.head_epochs} epochs, input x {cfg.head_input_scale}"
        ),
        "head_weight": cfg.head_weight,
        "escalate_share": cfg.escalate_share,
        "neighbours": {
            "k": cfg.neighbours_k,
            "temperature": cfg.neighbours_temperature,
            "background_similarity": cfg.neighbours_background,
            "vote_weight": cfg.neighbours_weight,
            "vote_floor": cfg.neighbours_floor,
        },
    }
    if finetuned is not None:
        parameters["finetuned"] = finetuned.manifest["parameters"]
    return parameters


def _parameters(
    cfg: TrainConfig, fz: Featurizer, head: _artifact.EmbeddingHead | None,
    finetuned: FinetunedEncoders | None,
) -> dict[str, Any]:  # fmt: skip
    """The recipe, as the manifest records it."""
    parameters: dict[str, Any] = {
        "classifier": "LinearSVC (one-vs-rest, squared hinge)",
        "C": cfg.C,
        "class_weight": cfg.class_weight,
        "features": asdict(cfg.features),
        "n_features": fz.n_features,
        "weights": "int8, per-class scale",
        "folds": cfg.folds,
        "seed": cfg.seed,
        "max_in_scope_false_alarm": cfg.max_in_scope_false_alarm,
        "isotonic": cfg.isotonic,
    }
    if head is not None:
        parameters["cascade"] = _cascade_parameters(cfg, head, finetuned)
    return parameters


def _provenance(data_dir: Path, train: Dataset) -> dict[str, Any]:
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": "BANKING77 intents (77) + out-of-scope flag",
        "training_data": {
            "sha256": data_sha256(data_dir),
            "rows": len(train),
            "in_scope_rows": sum(g == "banking77" for g in train.groups),
            "oos_rows": sum(lab == OOS_LABEL for lab in train.labels),
        },
    }


def train_model(
    data_dir: Path,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    log: Callable[[str], None] = print,
    encoder_dir: Path | None = None,
    finetuned_dir: Path | None = None,
) -> dict[str, Any]:
    """Cross-validate, calibrate, fit on all data and write an artifact to `out_dir`.

    With `finetuned_dir` (from `tools/finetune_encoder.py`) each fold is embedded by its own
    fine-tuned encoder and the artifact bundles the one fine-tuned on every row."""
    cfg = cfg or TrainConfig()
    started = time.perf_counter()
    train, dev, intents = _load(data_dir, log)
    labels = [*intents, OOS_LABEL]
    finetuned = None
    if finetuned_dir is not None and cfg.cascade:
        finetuned = FinetunedEncoders.open(finetuned_dir, data_dir, list(train.labels), labels, cfg)
        cfg = replace(cfg, encoder=FINETUNED_ENCODER)
        encoder_dir = finetuned.final_dir
    encoder_dir = encoder_dir or shipped_encoder_dir(cfg.encoder)
    y_idx = np.asarray([labels.index(v) for v in train.labels])
    embedded = _embeddings(cfg, finetuned, encoder_dir, (train, dev), y_idx, len(labels), log)
    cv = cross_validate(train, dev, intents, cfg, log, embedded.second_stage)
    if embedded.per_fold is not None and cfg.neighbours_k > 0:
        final = (embedded.final[0], embedded.final[1])
        cv["votes_oof"], cv["votes_dev"] = neighbour_cv(
            cfg, embedded.per_fold, final, y_idx, cv["folds"], len(labels)
        )
    metrics, linear, cascade = evaluate_cv(train, dev, cv, cfg)
    fz, w, b = fit_linear(cfg, train.texts, np.asarray(train.labels), cv["labels"])
    head = None
    if cascade is not None:
        weights = (finetuned.classifier(finetuned.final_dir) if finetuned is not None
                   else fit_head(cfg, embedded.final[0], y_idx, len(labels)))  # fmt: skip
        head = final_head(cfg, cascade, weights, encoder_dir, embedded, y_idx)
    art = _artifact.LinearArtifact(
        featurizer=fz, labels=cv["labels"], weights=w, bias=b, temperature=linear.temperature,
        iso_x=linear.iso[0], iso_y=linear.iso[1], oos_threshold=linear.oos_threshold, head=head,
    )  # fmt: skip
    extra = {
        **_provenance(data_dir, train),
        "parameters": _parameters(cfg, fz, head, finetuned),
        "metrics": metrics,
        "library_versions": _library_versions(),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    manifest = _artifact.save(art, out_dir, extra, VERSION_PREFIX if head is None else CASCADE_VERSION_PREFIX)
    if finetuned is not None:
        finetuned.bundle(out_dir)
    return manifest
