"""Escalation configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from pinworks_common.settings import CommonSettings
from pydantic import Field


class EscalationSettings(CommonSettings):
    http_port: int = Field(
        default=8000,
        validation_alias="ESCALATION_HTTP_PORT",
        description="Port of the agents' console and REST API.",
    )
    outbox_interval_seconds: float = Field(
        default=0.25,
        gt=0,
        validation_alias="ESCALATION_OUTBOX_INTERVAL",
        description="How often the outbox relay looks for unpublished human outcomes.",
    )
