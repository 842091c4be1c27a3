"""Specialists configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr

from pinworks_common.pricing import Price, default_prices
from pinworks_common.settings import CommonSettings

LLM_INSTANCES = ("llm_small", "llm_frontier")
"""The configured LLM handler instances; each reads `LLM_<NAME>_*` (e.g. `LLM_SMALL_BASE_URL`)."""
ReasoningEffort = Literal["minimal", "low", "medium", "high"]
"""How long a reasoning model may think before it answers (OpenAI's `reasoning_effort`)."""


@dataclass(frozen=True)
class LlmEndpoint:
    """One OpenAI-compatible chat-completions endpoint and how hard to try it."""

    name: str
    env_prefix: str
    base_url: str | None
    model: str
    api_key: str | None
    timeout_seconds: float
    max_retries: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    deadline_seconds: float
    max_tokens: int
    temperature: float
    passages: int
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 30.0
    concurrency: int = 16
    reasoning_effort: ReasoningEffort | None = None
    max_reasoning_tokens: int | None = None


class SpecialistSettings(CommonSettings):
    handlers: str = Field("template,kb,llm_small,llm_frontier", validation_alias="SPECIALISTS_HANDLERS")
    """Comma-separated handlers this deployment serves: template, kb, llm_small, llm_frontier.
    Every handler the routing policy names must be served by some deployment; an LLM handler
    without an endpoint declines as unavailable, so its tickets fall back."""
    concurrency: int = Field(16, ge=1, le=512, validation_alias="SPECIALISTS_CONCURRENCY")
    """Handler calls of one batch run concurrently, at most this many at once."""
    handler_timeout_seconds: float = Field(
        120.0, gt=0, validation_alias="SPECIALISTS_HANDLER_TIMEOUT_SECONDS")
    """Hard limit on one handler call; past it the ticket falls back."""
    kb_min_coverage: float = Field(0.35, ge=0, le=1)
    """Share of the ticket's term weight (IDF) the best article must contain for the kb handler to
    answer; calibrated on tests/data/kb_calibration.yaml."""
    kb_min_score: float = Field(6.0, ge=0)
    """Lowest BM25 score of the best passage for the kb handler to answer."""
    prices: dict[str, Price] = Field(default_factory=default_prices, validation_alias="SPECIALISTS_PRICES")
    """JSON price table per handler: per_call, per_1k_input_tokens, per_1k_output_tokens."""

    llm_small_base_url: str | None = None
    """OpenAI-compatible base URL of the small model, e.g. http://127.0.0.1:8000/v1; unset:
    llm_small reports itself unavailable and tickets fall back."""
    llm_small_model: str = ""
    """Model name sent to the small endpoint."""
    llm_small_api_key: SecretStr | None = None
    """Bearer token for the small endpoint."""
    llm_small_timeout_seconds: float = Field(20.0, gt=0)
    """Timeout of one request to the small model."""
    llm_small_concurrency: int = Field(16, ge=1, le=512)
    """Requests in flight to the small model at most (a one-slot local server wants 1-2: requests
    queued behind it would spend their timeout waiting)."""
    llm_small_reasoning_effort: ReasoningEffort | None = None
    """reasoning_effort sent to a reasoning model on the small endpoint (minimal, low, medium,
    high); unset: not sent."""
    llm_small_max_reasoning_tokens: int | None = Field(None, ge=0)
    """Reasoning quota per call on the small endpoint: the request asks for max_completion_tokens
    = LLM_MAX_TOKENS + this, and the tokens the model spent thinking are recorded; unset:
    max_tokens as for any chat model."""

    llm_frontier_base_url: str | None = None
    """OpenAI-compatible base URL of the frontier model (…/v1); unset: unavailable."""
    llm_frontier_model: str = ""
    """Model name sent to the frontier endpoint."""
    llm_frontier_api_key: SecretStr | None = None
    """Bearer token for the frontier endpoint."""
    llm_frontier_timeout_seconds: float = Field(30.0, gt=0)
    """Timeout of one request to the frontier model."""
    llm_frontier_concurrency: int = Field(16, ge=1, le=512)
    """Requests in flight to the frontier model at most."""
    llm_frontier_reasoning_effort: ReasoningEffort | None = None
    """reasoning_effort sent to a reasoning model on the frontier endpoint (minimal, low, medium,
    high); unset: not sent."""
    llm_frontier_max_reasoning_tokens: int | None = Field(None, ge=0)
    """Reasoning quota per call on the frontier endpoint: the request asks for
    max_completion_tokens = LLM_MAX_TOKENS + this, and the tokens the model spent thinking are
    recorded; unset: max_tokens as for any chat model."""

    llm_max_retries: int = Field(3, ge=0, le=10)
    """Retries after a 429, a 5xx, a timeout or a connection error."""
    llm_backoff_base_seconds: float = Field(0.5, ge=0)
    """First retry delay; doubles each retry (with jitter), Retry-After wins."""
    llm_backoff_max_seconds: float = Field(8.0, ge=0)
    """Longest computed backoff between retries."""
    llm_deadline_seconds: float = Field(60.0, gt=0)
    """Total time one ticket may spend on one LLM handler, retries included."""
    llm_max_tokens: int = Field(512, ge=16)
    """max_tokens of each completion."""
    llm_temperature: float = Field(0.2, ge=0, le=2)
    """Sampling temperature."""
    llm_passages: int = Field(5, ge=1, le=20)
    """Retrieved help-centre passages given to the model."""
    llm_breaker_failures: int = Field(5, ge=1)
    """Consecutive failed tickets (errors, timeouts) that open an endpoint's circuit."""
    llm_breaker_cooldown_seconds: float = Field(30.0, gt=0)
    """How long an open circuit skips the endpoint before one probe call."""

    def llm_endpoint(self, name: str) -> LlmEndpoint:
        """The endpoint settings of LLM instance `name` (llm_small or llm_frontier)."""
        short = name.removeprefix("llm_")
        base_url = getattr(self, f"llm_{short}_base_url")
        model = getattr(self, f"llm_{short}_model")
        env_prefix = f"LLM_{short.upper()}"
        if base_url and not model:
            raise ValueError(f"{env_prefix}_BASE_URL is set but {env_prefix}_MODEL is empty")
        key: SecretStr | None = getattr(self, f"llm_{short}_api_key")
        return LlmEndpoint(
            name=name, env_prefix=env_prefix, base_url=base_url or None, model=model,
            api_key=key.get_secret_value() if key else None,
            timeout_seconds=getattr(self, f"llm_{short}_timeout_seconds"),
            max_retries=self.llm_max_retries,
            backoff_base_seconds=self.llm_backoff_base_seconds,
            backoff_max_seconds=self.llm_backoff_max_seconds,
            deadline_seconds=self.llm_deadline_seconds,
            max_tokens=self.llm_max_tokens, temperature=self.llm_temperature,
            passages=self.llm_passages,
            breaker_failures=self.llm_breaker_failures,
            breaker_cooldown_seconds=self.llm_breaker_cooldown_seconds,
            concurrency=getattr(self, f"llm_{short}_concurrency"),
            reasoning_effort=getattr(self, f"llm_{short}_reasoning_effort"),
            max_reasoning_tokens=getattr(self, f"llm_{short}_max_reasoning_tokens"),
        )

    def handler_names(self) -> list[str]:
        return [name.strip() for name in self.handlers.split(",") if name.strip()]
