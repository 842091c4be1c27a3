"""Settings every service shares, read from the environment by each service's composition root.

A field reads the environment variable of its own name (upper case) unless `validation_alias`
names another; the docstring under a field is its description."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pinworks_common.nats_client import NatsClientSettings

LOCAL_BIND = "127.0.0.1"
"""Default interface of every listening port: a laptop's `make run` exposes nothing to its
network; containers and pods opt in to 0.0.0.0 explicitly."""


FILE_SUFFIX = "_FILE"


def _variable(name: str, info: FieldInfo) -> str:
    """The environment variable a field reads (its alias, else its name in upper case)."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        alias = next((choice for choice in alias.choices if isinstance(choice, str)), None)
    return alias if isinstance(alias, str) else name.upper()


class FileSettings(PydanticBaseSettingsSource):
    """`<VARIABLE>_FILE` names a file holding a secret setting (the convention of Docker
    secrets and the postgres image): `DATABASE_URL_FILE=/run/secrets/pinworks/database-url`
    gives `DATABASE_URL` without the password ever being in the environment. Setting both
    a variable and its `_FILE` is an error."""

    def __init__(self, settings_cls: type[BaseSettings], fields: tuple[str, ...]) -> None:
        super().__init__(settings_cls)
        self.fields = fields

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in self.fields:
            variable = _variable(name, self.settings_cls.model_fields[name])
            path = environ.get(variable + FILE_SUFFIX)
            if not path:
                continue
            if variable in environ:
                raise ValueError(f"set {variable} or {variable}{FILE_SUFFIX}, not both")
            values[variable if variable != name.upper() else name] = \
                Path(path).read_text().strip()
        return values


class CommonSettings(NatsClientSettings):
    """Connection and runtime settings; each service subclasses this with its own fields. NATS
    credentials and TLS are `NatsClientSettings`' (the nats CLI's variables); the secrets of
    `file_settings` may come from a file instead (`FileSettings`: `DATABASE_URL_FILE`)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", use_attribute_docstrings=True)

    file_settings: ClassVar[tuple[str, ...]] = ("database_url",)
    """Fields that `<VARIABLE>_FILE` may give (a subclass adds its own secrets)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, FileSettings(settings_cls, cls.file_settings), env_settings,
                dotenv_settings, file_secret_settings)

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
    batch_window_seconds: float = Field(0.25, gt=0, le=5, validation_alias="PINWORKS_BATCH_WINDOW_SECONDS")
    """Once a message has come, how long at most to wait for NATS's answer when asking for the
    others it already holds (up to the batch size). NATS answers at once, with what it holds
    and a status that ends the request, so this bounds only a NATS that does not answer: a
    batch is what arrived meanwhile, never a timer's worth."""
    max_deliveries: int = Field(5, ge=1, validation_alias="PINWORKS_MAX_DELIVERIES")
    """Deliveries of a failing message before it is dead-lettered."""
    max_unfinished_deliveries: int = Field(
        5, ge=1, validation_alias="PINWORKS_MAX_UNFINISHED_DELIVERIES")
    """Deliveries of a message begun and never finished (its process died on it: a segfault,
    an OOM kill; or its ack wait ran out) before it is dead-lettered instead of processed
    again. Each such delivery comes back after `PINWORKS_ACK_WAIT_SECONDS`."""
    unfinished_sweep_seconds: float = Field(
        3600.0, gt=0, validation_alias="PINWORKS_UNFINISHED_SWEEP_SECONDS")
    """How often each service deletes its stages' unfinished-delivery counts not updated for
    longer than their stream's max age (left by a message that never came back, or by a
    deletion a crash lost; `pinworks_common.deliveries`). Such a row is never read again: the
    sweep only keeps the table from growing."""
    ack_wait_seconds: float = Field(30.0, gt=0, validation_alias="PINWORKS_ACK_WAIT_SECONDS")
    """How long JetStream waits for an ack before redelivering."""
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    """OTLP/HTTP endpoint for traces; unset keeps trace ids without exporting."""
