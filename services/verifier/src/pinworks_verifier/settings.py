"""Verifier configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from pinworks_common.settings import CommonSettings
from pydantic import Field


class VerifierSettings(CommonSettings):
    negative_sentiment_threshold: float = Field(
        default=-0.6,
        ge=-1,
        le=1,
        validation_alias="VERIFIER_NEGATIVE_SENTIMENT",
        description="VADER compound score at or below which a ticket goes to a person.",
    )
