"""Settings every service shares, read from the environment by each service's composition root.

A field reads the environment variable of its own name (upper case) unless `validation_alias`
names another; the docstring under a field is its description."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pinworks_common.nats_client import NatsClientSettings

LOCAL_BIND = "127.0.0.1"
"""Default interface of every listening port: a laptop's `make run` exposes nothing to its
network; containers and pods opt in to 0.0.0.0 explicitly."""


class CommonSettings(NatsClientSettings):
    """Connection and runtime settings; each service subclasses this with its own fields. NATS
    credentials and TLS are `NatsClientSettings`' (the nats CLI's variables)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", use_attribute_docstrings=True)

    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server URL(s), comma separated."""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    """Postgres URL (postgresql://user:pass@host:port/db)."""
    health_port: int = Field(8080, validation_alias="PINWORKS_HEALTH_PORT")
    """Port of the /healthz, /readyz and /metrics (Prometheus) endpoints."""
    health_host: str = Field(LOCAL_BIND, validation_alias="PINWORKS_HEALTH_HOST")
    """Interface the health endpoints listen on: loopback for local runs (the chart sets
    0.0.0.0 so the kubelet and Prometheus reach the pod)."""
    metrics_interval_seconds: float = Field(
        15.0, gt=0, validation_alias="PINWORKS_METRICS_INTERVAL_SECONDS")
    """How often the gauges read from NATS or Postgres (consumer lag, queue depth, budgets) are
    refreshed."""
    metrics_max_business_units: int = Field(
        100, ge=1, validation_alias="PINWORKS_METRICS_MAX_BUSINESS_UNITS")
    """Distinct business units a service labels metrics with; later ones are reported as `other`
    (senders name units, so the label set must stay bounded)."""
    log_level: str = Field("INFO", validation_alias="PINWORKS_LOG_LEVEL")
    batch_size: int = Field(128, ge=1, le=1000, validation_alias="PINWORKS_BATCH_SIZE")
    """Messages pulled and committed together."""
    batch_window_seconds: float = Field(0.002, gt=0, le=5, validation_alias="PINWORKS_BATCH_WINDOW_SECONDS")
    """Once a message has come, how long to wait for NATS to hand over the others it already
    holds (up to the batch size): a batch is what arrived meanwhile, never a timer's worth."""
    max_deliveries: int = Field(5, ge=1, validation_alias="PINWORKS_MAX_DELIVERIES")
    """Deliveries of a failing message before it is dead-lettered."""
    ack_wait_seconds: float = Field(30.0, gt=0, validation_alias="PINWORKS_ACK_WAIT_SECONDS")
    """How long JetStream waits for an ack before redelivering."""
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    """OTLP/HTTP endpoint for traces; unset keeps trace ids without exporting."""
