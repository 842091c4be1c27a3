"""Specialists configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from decimal import Decimal

from pinworks_common.settings import CommonSettings
from pydantic import BaseModel, Field


class Price(BaseModel):
    per_call: Decimal = Field(default=Decimal(0), description="USD per handled ticket.")
    per_1k_input_tokens: Decimal = Field(default=Decimal(0), description="USD per 1k input tokens.")
    per_1k_output_tokens: Decimal = Field(default=Decimal(0), description="USD per 1k output tokens.")


def default_prices() -> dict[str, Price]:
    return {
        "template": Price(per_call=Decimal("0.0005")),
        "kb": Price(per_call=Decimal("0.002")),
        "llm_small": Price(per_call=Decimal("0.0002"), per_1k_input_tokens=Decimal("0.0001"),
                           per_1k_output_tokens=Decimal("0.0004")),
        "llm_frontier": Price(per_call=Decimal("0.001"), per_1k_input_tokens=Decimal("0.0025"),
                              per_1k_output_tokens=Decimal("0.01")),
    }


class SpecialistSettings(CommonSettings):
    handlers: str = Field(
        default="template",
        validation_alias="SPECIALISTS_HANDLERS",
        description="Comma-separated handlers this deployment serves (template, kb, ...).",
    )
    prices: dict[str, Price] = Field(
        default_factory=default_prices,
        validation_alias="SPECIALISTS_PRICES",
        description="JSON price table per handler: per_call, per_1k_input_tokens, per_1k_output_tokens.",
    )

    def handler_names(self) -> list[str]:
        return [name.strip() for name in self.handlers.split(",") if name.strip()]
