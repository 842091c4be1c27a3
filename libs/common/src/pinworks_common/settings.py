"""Settings every service shares, read from the environment by each service's composition root."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Connection and runtime settings; each service subclasses this with its own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias="NATS_URL",
        description="NATS server URL(s), comma separated.",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
        description="Postgres URL (postgresql://user:pass@host:port/db).",
    )
    health_port: int = Field(
        default=8080,
        validation_alias="PINWORKS_HEALTH_PORT",
        description="Port of the /healthz, /readyz and /metrics (Prometheus) endpoints.",
    )
    metrics_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        validation_alias="PINWORKS_METRICS_INTERVAL_SECONDS",
        description="How often the gauges read from NATS or Postgres (consumer lag, queue "
        "depth, budgets) are refreshed.",
    )
    metrics_max_business_units: int = Field(
        default=100,
        ge=1,
        validation_alias="PINWORKS_METRICS_MAX_BUSINESS_UNITS",
        description="Distinct business units a service labels metrics with; later ones are "
        "reported as `other` (senders name units, so the label set must stay bounded).",
    )
    log_level: str = Field(default="INFO", validation_alias="PINWORKS_LOG_LEVEL")
    batch_size: int = Field(
        default=128,
        ge=1,
        le=1000,
        validation_alias="PINWORKS_BATCH_SIZE",
        description="Messages pulled and committed together.",
    )
    batch_window_seconds: float = Field(
        default=0.05,
        gt=0,
        le=5,
        validation_alias="PINWORKS_BATCH_WINDOW_SECONDS",
        description="Longest wait to fill a batch: adds at most this much latency per stage.",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        validation_alias="PINWORKS_MAX_DELIVERIES",
        description="Deliveries of a failing message before it is dead-lettered.",
    )
    ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="PINWORKS_ACK_WAIT_SECONDS",
        description="How long JetStream waits for an ack before redelivering.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP endpoint for traces; unset keeps trace ids without exporting.",
    )
