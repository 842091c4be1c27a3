"""Escalation configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from pinworks_common.pricing import AGENT_COST_ENV, DEFAULT_AGENT_COST
from pinworks_common.settings import LOCAL_BIND, CommonSettings

if TYPE_CHECKING:
    from pinworks_escalation.signin import ThrottlePolicy


class EscalationSettings(CommonSettings):
    file_settings: ClassVar[tuple[str, ...]] = (*CommonSettings.file_settings,
                                                "console_database_url")

    http_port: int = Field(8000, validation_alias="ESCALATION_HTTP_PORT")
    """Port of the agents' console and REST API."""
    outbox_interval_seconds: float = Field(5.0, gt=0, validation_alias="ESCALATION_OUTBOX_INTERVAL")
    """How often the outbox relay looks for unpublished human outcomes unless told sooner (each
    outbox write notifies it when its transaction commits)."""
    console_database_url: str | None = Field(
        None, validation_alias="ESCALATION_CONSOLE_DATABASE_URL")
    """Postgres URL the agents' console connects with (the `pinworks_console` role: agents'
    work on the queue, no outbox relay); unset: the service's own `DATABASE_URL`."""
    http_host: str = Field(LOCAL_BIND, validation_alias="ESCALATION_HTTP_HOST")
    """Interface the agents' console listens on: loopback for local runs (the chart and
    compose set 0.0.0.0 inside the pod or container)."""
    session_hours: float = Field(12.0, gt=0, validation_alias="ESCALATION_SESSION_HOURS")
    """How long a console sign-in lasts (sessions live in Postgres: logout, a password change
    or this expiry ends them)."""
    cli_token_hours: float = Field(8.0, gt=0, le=24, validation_alias="PINWORKS_AGENT_TOKEN_HOURS")
    """How long `pinworks login` keeps an agent signed in on a terminal (a `cli` session)."""
    secure_cookies: bool | None = Field(None, validation_alias="ESCALATION_SECURE_COOKIES")
    """Mark the session cookie Secure. Unset: Secure unless the console is reached on
    localhost / 127.0.0.1 / ::1 (the chart sets true)."""
    signin_account_attempts: int = Field(5, ge=1, validation_alias="ESCALATION_SIGNIN_ACCOUNT_ATTEMPTS")
    """Sign-in attempts one agent name may take per window before it is locked."""
    signin_address_attempts: int = Field(20, ge=1, validation_alias="ESCALATION_SIGNIN_ADDRESS_ATTEMPTS")
    """Sign-in attempts one client address may take per window before it is locked."""
    signin_window_minutes: float = Field(15.0, gt=0, validation_alias="ESCALATION_SIGNIN_WINDOW_MINUTES")
    """The window the attempts are counted in."""
    signin_lockout_seconds: float = Field(60.0, gt=0, validation_alias="ESCALATION_SIGNIN_LOCKOUT_SECONDS")
    """The first lockout; each further one doubles, up to an hour."""
    trusted_origins: str = Field("", validation_alias="ESCALATION_TRUSTED_ORIGINS")
    """Comma-separated origins (scheme://host[:port]) besides the console's own that may post
    to it, e.g. the public address behind a proxy that rewrites Host."""
    forwarded_allow_ips: str = Field("", validation_alias="ESCALATION_FORWARDED_ALLOW_IPS")
    """Comma-separated addresses or networks of reverse proxies (an ingress controller) whose
    X-Forwarded-For / X-Forwarded-Proto the console believes: the client address behind them
    becomes the sign-in throttle's per-address key. Empty (the default): no proxy is trusted
    and the peer's own address counts, so nobody can pick their address with a header."""
    hsts: bool | None = Field(None, validation_alias="ESCALATION_HSTS")
    """Send Strict-Transport-Security. Unset: when the request came over HTTPS."""
    lease_minutes: int = Field(15, ge=1, le=480, validation_alias="ESCALATION_LEASE_MINUTES")
    """How long a claim holds a ticket before it returns to the queue."""
    agent_cost_usd: Decimal = Field(DEFAULT_AGENT_COST, ge=0, validation_alias=AGENT_COST_ENV)
    """Charged to the ticket's business unit when an agent resolves it."""
    quality_sample_rate: float = Field(0.02, ge=0, le=1,
                                       validation_alias="ESCALATION_QUALITY_SAMPLE_RATE")
    """Share of automatic answers drawn at random for the agents' quality review (0: none);
    their verdicts feed the live wrong-answer estimate the router's quality guard acts on."""
    queue_refresh_seconds: float = Field(2.0, gt=0, validation_alias="ESCALATION_QUEUE_REFRESH_SECONDS")
    """How often an open console page refreshes the queue."""
    retention_days: int = Field(90, ge=1, validation_alias="ESCALATION_RETENTION_DAYS")
    """Days a ticket's personal data is kept after it was received (a ticket still waiting for
    an agent keeps it until resolved); then the retention task erases it as `pinworks erase`
    does."""
    retention_interval_seconds: float = Field(
        3600.0, gt=0, validation_alias="ESCALATION_RETENTION_INTERVAL_SECONDS")
    """How often the retention task looks for tickets past `retention_days`."""

    def signin_policy(self) -> ThrottlePolicy:
        from pinworks_escalation.signin import ThrottlePolicy

        return ThrottlePolicy(
            account_attempts=self.signin_account_attempts,
            address_attempts=self.signin_address_attempts,
            window=timedelta(minutes=self.signin_window_minutes),
            lockout=timedelta(seconds=self.signin_lockout_seconds))
