"""Classifier configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field

from pinworks_common.pricing import CLASSIFIER_COST_ENV, DEFAULT_CLASSIFIER_COST
from pinworks_common.settings import CommonSettings
from pinworks_contracts.identities import DEFAULT_PLATFORM


class ClassifierSettings(CommonSettings):
    artifact_dir: Path | None = Field(None, validation_alias="CLASSIFIER_ARTIFACT_DIR")
    """Model artifact directory; unset uses the model shipped in the package."""
    encoder_threads: int = Field(1, ge=1, validation_alias="CLASSIFIER_ENCODER_THREADS")
    """Cores the sentence encoder of the cascade's second stage may use per replica."""
    negative_sentiment_threshold: float = Field(
        -0.8, ge=-1, le=1, validation_alias="CLASSIFIER_NEGATIVE_SENTIMENT")
    """VADER compound score at or below which the customer-state reading records very negative
    sentiment (puts the ticket ahead in the human queue; rules can use it)."""
    cost_per_ticket_usd: Decimal = Field(DEFAULT_CLASSIFIER_COST, ge=0,
                                         validation_alias=CLASSIFIER_COST_ENV)
    """Cost charged to the business unit for classifying one ticket (`policy calibrate` prices
    each calibration ticket with the same variable)."""
    platform_units: dict[str, list[str]] = Field(
        default_factory=lambda: {DEFAULT_PLATFORM: ["*"]},
        validation_alias="CLASSIFIER_PLATFORM_UNITS")
    """JSON map support platform -> business units it may submit for (`*` every unit, `abc*`
    every unit starting with `abc`); a submission for another unit, or from a platform not
    named, is a `rejected` outcome. The default binds the `support` platform that `make run`
    generates to every unit; name your platforms' units in production."""
