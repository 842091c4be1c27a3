"""The training run's hyper-parameters, recorded in every artifact's manifest."""

from __future__ import annotations

from dataclasses import dataclass, field

from pinworks_classifier.model.encoder import DEFAULT_ENCODER
from pinworks_classifier.model.features import FeatureConfig

VERSION_PREFIX = "intent-svm"
CASCADE_VERSION_PREFIX = "intent-cascade"


@dataclass
class TrainConfig:
    """Training hyper-parameters, recorded in the manifest."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    C: float = 1.0
    class_weight: str | None = "balanced"
    folds: int = 5
    seed: int = 0
    max_in_scope_false_alarm: float = 0.005  # OOS threshold: at most this share of in-scope flagged
    isotonic: bool = True
    cascade: bool = True  # add the sentence-embedding stage
    encoder: str = DEFAULT_ENCODER
    head_hidden: int = 768
    head_alpha: float = 1e-4
    head_epochs: int = 40
    head_input_scale: float = 4.0  # unit embeddings are small; scaled so Adam's default step suits
    head_weight: float = 0.5  # share of the blend given to the embedding head
    escalate_share: float = 0.45  # in-scope share (least confident) sent to the second stage
    neighbours_k: int = 10  # nearest training examples voting in the second stage; 0: none
    neighbours_temperature: float = 20.0  # of the exponential weights of their similarities
    neighbours_background: float = 0.75  # similarity of the abstaining votes: farther ones fade
    neighbours_weight: float = 0.5  # of their log-vote in the blend
    neighbours_floor: float = 0.02  # added to the vote before the log

