"""Router configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pinworks_common.pricing import Price, default_prices
from pinworks_common.settings import CommonSettings
from pinworks_contracts.subjects import ROUTER_POLICY_BUCKET


class RouterSettings(CommonSettings):
    policy_file: Path | None = Field(None, validation_alias="ROUTER_POLICY_FILE")
    """YAML routing policy; unset uses the default policy shipped with the router."""
    shadow_policy_file: Path | None = Field(None, validation_alias="ROUTER_SHADOW_POLICY_FILE")
    """Candidate policy run beside the live one: its decisions and disagreements are recorded
    (stage `router-shadow`), never acted on. The KV key `shadow` overrides it."""
    policy_bucket: str = Field(ROUTER_POLICY_BUCKET, validation_alias="ROUTER_POLICY_BUCKET")
    """NATS KV bucket of the live policy (`pinworks policy apply`); its value, once set, replaces
    the file policy and every later value is swapped in without a restart."""
    policy_watch: bool = Field(True, validation_alias="ROUTER_POLICY_WATCH")
    """Follow the live policy in the KV bucket; false routes by the file only."""
    policy_recheck_seconds: float = Field(5.0, gt=0, validation_alias="ROUTER_POLICY_RECHECK_SECONDS")
    """How often a KV policy value that could not be checked against `routing_policies`
    (Postgres unreachable) is checked again: once it can be, a recorded value that is still the
    key's newest loads and any other's refusal is audited."""
    prices: dict[str, Price] = Field(default_factory=default_prices, validation_alias="SPECIALISTS_PRICES")
    """The specialists' JSON price table (per handler: per_call, per_1k_input_tokens,
    per_1k_output_tokens); dollar budgets charge each ticket its estimated handler cost."""
    quality_refresh_seconds: float = Field(10.0, gt=0,
                                           validation_alias="ROUTER_QUALITY_REFRESH_SECONDS")
    """How often the quality guard re-estimates the scopes and reads the tightened ones."""
    quality_min_reviews: int = Field(30, ge=1, validation_alias="ROUTER_QUALITY_MIN_REVIEWS")
    """Agents' verdicts a scope needs before the guard judges it against the error budget."""
    quality_guard: bool = Field(True, validation_alias="ROUTER_QUALITY_GUARD")
    """Route tightened scopes to people; false turns the live quality guard off."""
