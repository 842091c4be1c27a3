"""Router configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pinworks_common.settings import CommonSettings


class RouterSettings(CommonSettings):
    policy_file: Path | None = Field(
        default=None,
        validation_alias="ROUTER_POLICY_FILE",
        description="YAML routing policy; unset uses the default policy shipped with the router.",
    )
