"""The specialists' metrics: results per handler, and per model endpoint the HTTP calls, their
latency and errors, the tokens billed and the circuit breaker's state.

Calls are counted when they happen (a retried batch really calls again); results and tokens
are counted from the decisions a batch newly records, once it commits, so they agree with the
audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pinworks_common.metrics import LATENCY_BUCKETS, after_commit
from pinworks_specialists.handlers import Handler

BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

RESULTS = Counter(
    "pinworks_specialist_results_total",
    "Handler results recorded, by handler and result (draft, or the decline's kind).",
    ["handler", "result"],
)
MODEL_CALLS = Counter(
    "pinworks_model_calls_total",
    "HTTP calls to a model endpoint (each retry is a call), by endpoint and result "
    "(ok, http_error, timeout, connection_error, malformed).", ["endpoint", "result"],
)
MODEL_CALL_SECONDS = Histogram(
    "pinworks_model_call_seconds", "Duration of each HTTP call to a model endpoint.",
    ["endpoint"], buckets=LATENCY_BUCKETS,
)
MODEL_TOKENS = Counter(
    "pinworks_model_tokens_total",
    "Tokens billed by a model endpoint (as recorded in the audit), by direction.",
    ["endpoint", "direction"],
)


def call_result(attempt: Mapping[str, Any]) -> str:
    outcome = str(attempt.get("outcome", ""))
    if outcome == "ok":
        return "ok"
    if outcome.startswith("timed out"):
        return "timeout"
    if outcome.startswith("connection failed"):
        return "connection_error"
    if outcome.startswith("HTTP"):
        return "http_error"
    status = attempt.get("status")
    return "malformed" if isinstance(status, int) and 200 <= status < 300 else "error"


def observe_calls(endpoint: str, results: Sequence[Any]) -> None:
    """Count every HTTP attempt a batch's handler calls made (details["attempts"])."""
    for result in results:
        for attempt in result.details.get("attempts") or []:
            MODEL_CALLS.labels(endpoint, call_result(attempt)).inc()
            seconds = attempt.get("seconds")
            if isinstance(seconds, int | float):
                MODEL_CALL_SECONDS.labels(endpoint).observe(seconds)


def observe_recorded(handler: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Results and billed tokens of newly recorded decisions, counted once their batch commits."""
    seen = []
    for row in rows:
        output = row["output"]
        result = "draft" if "draft" in output else str(output.get("kind", "declined"))
        usage = output.get("usage") or {}
        seen.append((result, int(usage.get("input_tokens", 0) or 0),
                     int(usage.get("output_tokens", 0) or 0)))

    def observe() -> None:
        for result, input_tokens, output_tokens in seen:
            RESULTS.labels(handler, result).inc()
            if input_tokens:
                MODEL_TOKENS.labels(handler, "input").inc(input_tokens)
            if output_tokens:
                MODEL_TOKENS.labels(handler, "output").inc(output_tokens)

    after_commit(observe)


class BreakerCollector(Collector):
    """Each model endpoint's circuit breaker, read at scrape time."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "pinworks_model_circuit_state",
            "Circuit breaker of a model endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["endpoint"])
        for handler in self.handlers:
            breaker = getattr(handler, "breaker", None)
            if breaker is not None:
                family.add_metric([handler.name], BREAKER_STATES.get(breaker.state, 2))
        yield family


BREAKERS = BreakerCollector()
REGISTRY.register(BREAKERS)

