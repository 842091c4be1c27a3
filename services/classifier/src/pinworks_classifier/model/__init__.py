"""Intent classification for pinworks: 77 BANKING77 intents + out-of-scope detection."""

from .core import IntentModel, IntentScore, Prediction, default_artifact_dir

__all__ = ["IntentModel", "IntentScore", "Prediction", "default_artifact_dir"]
