"""Escalation configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from pinworks_common.pricing import AGENT_COST_ENV, DEFAULT_AGENT_COST
from pinworks_common.settings import CommonSettings


class EscalationSettings(CommonSettings):
    http_port: int = Field(8000, validation_alias="ESCALATION_HTTP_PORT")
    """Port of the agents' console and REST API."""
    outbox_interval_seconds: float = Field(0.25, gt=0, validation_alias="ESCALATION_OUTBOX_INTERVAL")
    """How often the outbox relay looks for unpublished human outcomes."""
    http_host: str = Field("0.0.0.0", validation_alias="ESCALATION_HTTP_HOST")
    """Interface the agents' console listens on."""
    session_secret: str | None = Field(None, validation_alias="ESCALATION_SESSION_SECRET")
    """Key that signs the console's session cookies; set the same value on every replica.
    Unset: a random key per process (sessions end when it restarts)."""
    session_hours: float = Field(12.0, gt=0, validation_alias="ESCALATION_SESSION_HOURS")
    """How long a console sign-in lasts."""
    secure_cookies: bool = Field(False, validation_alias="ESCALATION_SECURE_COOKIES")
    """Mark the session cookie Secure (set behind HTTPS)."""
    lease_minutes: int = Field(15, ge=1, le=480, validation_alias="ESCALATION_LEASE_MINUTES")
    """How long a claim holds a ticket before it returns to the queue."""
    agent_cost_usd: Decimal = Field(DEFAULT_AGENT_COST, ge=0, validation_alias=AGENT_COST_ENV)
    """Charged to the ticket's business unit when an agent resolves it."""
    queue_refresh_seconds: float = Field(2.0, gt=0, validation_alias="ESCALATION_QUEUE_REFRESH_SECONDS")
    """How often an open console page refreshes the queue."""
