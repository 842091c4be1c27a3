"""Intent classification for pinworks: 77 BANKING77 intents + out-of-scope detection."""

from .core import CandidateIntent, IntentModel, Prediction, default_artifact_dir

__all__ = ["IntentModel", "CandidateIntent", "Prediction", "default_artifact_dir"]
