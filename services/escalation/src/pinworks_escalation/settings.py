"""Escalation configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from pinworks_common.settings import CommonSettings


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
    http_host: str = Field(
        default="0.0.0.0",
        validation_alias="ESCALATION_HTTP_HOST",
        description="Interface the agents' console listens on.",
    )
    session_secret: str | None = Field(
        default=None,
        validation_alias="ESCALATION_SESSION_SECRET",
        description="Key that signs the console's session cookies; set the same value on every "
        "replica. Unset: a random key per process (sessions end when it restarts).",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        validation_alias="ESCALATION_SESSION_HOURS",
        description="How long a console sign-in lasts.",
    )
    secure_cookies: bool = Field(
        default=False,
        validation_alias="ESCALATION_SECURE_COOKIES",
        description="Mark the session cookie Secure (set behind HTTPS).",
    )
    lease_minutes: int = Field(
        default=15,
        ge=1,
        le=480,
        validation_alias="ESCALATION_LEASE_MINUTES",
        description="How long a claim holds a ticket before it returns to the queue.",
    )
    agent_cost_usd: Decimal = Field(
        default=Decimal("1.50"),
        ge=0,
        validation_alias="PINWORKS_AGENT_COST_USD",
        description="Charged to the ticket's business unit when an agent resolves it.",
    )
    queue_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        validation_alias="ESCALATION_QUEUE_REFRESH_SECONDS",
        description="How often an open console page refreshes the queue.",
    )
