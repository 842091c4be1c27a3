"""Handler prices and the cost estimates made without calling a handler, defined once.

The specialists charge by the price table; the router's budgets and policy simulation and the
CLI's cost report baseline estimate with it. `SPECIALISTS_PRICES` (JSON, per handler: per_call,
per_1k_input_tokens, per_1k_output_tokens) overrides the default table.

Estimating what a ticket would cost at a handler, without calling it:
  input tokens  = ceil(len(priced_text(subject, body)) / 4) + PROMPT_OVERHEAD_TOKENS
  output tokens = ANSWER_TOKENS
  cost          = per_call + per_1k_input * input/1000 + per_1k_output * output/1000
Four characters per token is the specialists' own estimate when a server reports no usage;
the overhead covers the system prompt and retrieved passages, the answer size a typical reply.
`human` costs nothing as a handler: an agent's work is charged once, when the agent resolves the
ticket (`PINWORKS_AGENT_COST_USD`, ledger component `agent`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

CHARS_PER_TOKEN = 4
PROMPT_OVERHEAD_TOKENS = 400
ANSWER_TOKENS = 200
FRONTIER = "llm_frontier"
PRICES_ENV = "SPECIALISTS_PRICES"


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


def load_prices(environ: Mapping[str, str] | None = None) -> dict[str, Price]:
    """`SPECIALISTS_PRICES` from the environment when set, else the defaults."""
    raw = (os.environ if environ is None else environ).get(PRICES_ENV)
    if not raw:
        return default_prices()
    try:
        return TypeAdapter(dict[str, Price]).validate_python(json.loads(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: "
            f"{error['msg'].removeprefix('Value error, ')}" for error in exc.errors())
        raise ValueError(f"{PRICES_ENV} is not a JSON price table: {problems}") from None
    except ValueError as exc:
        raise ValueError(f"{PRICES_ENV} is not a JSON price table: {exc}") from None


AGENT_COST_ENV = "PINWORKS_AGENT_COST_USD"
AGENT_COMPONENT = "agent"
"""The cost ledger's component of an agent's charge (what `report costs` counts as people)."""
DEFAULT_AGENT_COST = Decimal("1.50")
_AGENT_COST = TypeAdapter(Annotated[Decimal, Field(ge=0, allow_inf_nan=False)])


CLASSIFIER_COST_ENV = "CLASSIFIER_COST_USD"
DEFAULT_CLASSIFIER_COST = Decimal("0.00002")


def _amount(env: str, default: Decimal, environ: Mapping[str, str] | None) -> Decimal:
    raw = (os.environ if environ is None else environ).get(env)
    if not raw:
        return default
    try:
        return _AGENT_COST.validate_python(raw)
    except ValidationError:
        raise ValueError(f"{env} must be a non-negative amount, got {raw!r}") from None


def classifier_cost_usd(environ: Mapping[str, str] | None = None) -> Decimal:
    """What classifying one ticket costs its business unit (`CLASSIFIER_COST_USD`): the
    classifier charges it on every ticket it accepts, and calibration prices every calibration
    ticket with it. The verifier charges nothing (its checks are local models)."""
    return _amount(CLASSIFIER_COST_ENV, DEFAULT_CLASSIFIER_COST, environ)


def agent_cost_usd(environ: Mapping[str, str] | None = None) -> Decimal:
    """What one ticket an agent resolves costs its business unit (`PINWORKS_AGENT_COST_USD`):
    escalation charges it, calibration prices every ticket sent to a person with it, and
    `report costs` prices the tickets still waiting for one and the all-human baseline."""
    return _amount(AGENT_COST_ENV, DEFAULT_AGENT_COST, environ)


def priced_text(subject: str | None, body: str) -> str:
    """The text an estimate counts tokens of: the subject line, a newline, then the body.

    Not the classifier's model input (which joins them with ". " and drops a repeated subject):
    an estimate counts every character a handler would be sent."""
    return f"{subject}\n{body}" if subject else body


def estimated_tokens(text: str) -> tuple[int, int]:
    """(input, output) tokens a model handler would spend on a ticket with this text."""
    return -(-len(text) // CHARS_PER_TOKEN) + PROMPT_OVERHEAD_TOKENS, ANSWER_TOKENS


def estimated_cost(price: Price | None, text: str) -> Decimal:
    if price is None:
        return Decimal(0)
    tokens_in, tokens_out = estimated_tokens(text)
    return (price.per_call + price.per_1k_input_tokens * tokens_in / 1000
            + price.per_1k_output_tokens * tokens_out / 1000)
