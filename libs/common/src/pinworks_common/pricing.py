"""The handler price table, defined once: the specialists charge by it, the router's
simulation and cost report estimate with it. `SPECIALISTS_PRICES` (JSON) overrides it."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field


class Price(BaseModel):
    per_call: Decimal = Field(default=Decimal(0), description="USD per handled ticket.")
    per_1k_input_tokens: Decimal = Field(default=Decimal(0), description="USD per 1k input tokens.")
    per_1k_output_tokens: Decimal = Field(default=Decimal(0),
                                          description="USD per 1k output tokens.")


def default_prices() -> dict[str, Price]:
    return {
        "template": Price(per_call=Decimal("0.0005")),
        "kb": Price(per_call=Decimal("0.002")),
        "llm_small": Price(per_call=Decimal("0.0002"), per_1k_input_tokens=Decimal("0.0001"),
                           per_1k_output_tokens=Decimal("0.0004")),
        "llm_frontier": Price(per_call=Decimal("0.001"), per_1k_input_tokens=Decimal("0.0025"),
                              per_1k_output_tokens=Decimal("0.01")),
    }
