"""An OpenAI-compatible chat-completions client: timeouts, retries with exponential backoff and
jitter honouring ``Retry-After``, all within a per-ticket deadline; replies read strictly."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from pinworks_specialists.handlers import DeclineKind
from pinworks_specialists.settings import LlmEndpoint

CHARS_PER_TOKEN = 4
"""Token estimate when the server reports no usage: about four characters per token."""


def estimate_tokens(text: str) -> int:
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(retry: int, base: float, cap: float, retry_after: float | None = None,
                  jitter: float = 0.5) -> float:
    """Delay before retry number ``retry`` (0-based): ``base * 2**retry`` capped at ``cap``,
    the upper half jittered by ``jitter`` in [0, 1]; a server's Retry-After is never undercut."""
    exponential = min(cap, base * 2.0 ** retry)
    delay = exponential / 2 + exponential / 2 * min(max(jitter, 0.0), 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    model: str | None
    reasoning_tokens: int | None = None
    """Of the output tokens, those a reasoning model spent thinking (its usage says so)."""


class MalformedReply(ValueError):
    """A 2xx reply that is not a chat completion."""


def parse_completion(body: bytes, prompt_chars: int) -> Completion:
    """Read a chat-completions reply body; raise :class:`MalformedReply` saying what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedReply(f"reply body is not JSON ({exc}): {body[:120]!r}") from None
    if not isinstance(data, dict):
        raise MalformedReply(f"reply is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedReply("reply has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise MalformedReply("reply's first choice has no message content")
    finish = choices[0].get("finish_reason")
    usage = data.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
        input_tokens, output_tokens, estimated = prompt_tokens, completion_tokens, False
    else:
        input_tokens = -(-prompt_chars // CHARS_PER_TOKEN)
        output_tokens, estimated = estimate_tokens(content), True
    model = data.get("model")
    return Completion(content, finish if isinstance(finish, str) else None, input_tokens,
                      output_tokens, estimated, model if isinstance(model, str) else None,
                      reasoning_tokens_of(usage))


def reasoning_tokens_of(usage: Any) -> int | None:
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return tokens if isinstance(tokens, int) else None


def request_payload(endpoint: LlmEndpoint, messages: list[dict[str, str]]) -> dict[str, Any]:
    """The chat-completions request. With a reasoning quota the token bound is
    `max_completion_tokens` (the answer's tokens plus the quota), which reasoning models take
    instead of `max_tokens` and which counts the tokens they spend thinking."""
    payload: dict[str, Any] = {"model": endpoint.model, "messages": messages,
                               "temperature": endpoint.temperature}
    if endpoint.max_reasoning_tokens is None:
        payload["max_tokens"] = endpoint.max_tokens
    else:
        payload["max_completion_tokens"] = endpoint.max_tokens + endpoint.max_reasoning_tokens
    if endpoint.reasoning_effort is not None:
        payload["reasoning_effort"] = endpoint.reasoning_effort
    return payload



@dataclass(frozen=True)
class _Request:
    url: str
    payload: dict[str, Any]
    headers: dict[str, str]
    prompt_chars: int


def _request(endpoint: LlmEndpoint, messages: list[dict[str, str]]) -> _Request:
    assert endpoint.base_url
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    return _Request(endpoint.base_url.rstrip("/") + "/chat/completions", request_payload(endpoint, messages),
                    headers, sum(len(m["content"]) for m in messages))


@dataclass(frozen=True)
class _Retryable:
    """An attempt that failed in a way a retry may mend."""

    outcome: str
    kind: DeclineKind
    retry_after: float | None = None


class LlmFailure(Exception):
    """The endpoint gave no usable completion within the retry budget."""

    def __init__(self, reason: str, kind: DeclineKind, attempts: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.attempts = attempts


@dataclass
class ChatClient:
    """POSTs to ``{base_url}/chat/completions`` with timeouts, retries and a deadline."""

    endpoint: LlmEndpoint
    http: httpx.AsyncClient
    sleep: Callable[[float], Any] = asyncio.sleep
    jitter: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic

    async def complete(self, messages: list[dict[str, str]]) -> tuple[Completion, list[dict[str, Any]]]:
        endpoint = self.endpoint
        request = _request(endpoint, messages)
        deadline = self.clock() + endpoint.deadline_seconds
        attempts: list[dict[str, Any]] = []
        last_kind: DeclineKind = "error"
        for retry in range(endpoint.max_retries + 1):
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise LlmFailure(f"no reply within the {endpoint.deadline_seconds:g}s deadline "
                                 f"after {len(attempts)} attempt(s)", "timeout", attempts)
            started = self.clock()
            wait = min(endpoint.timeout_seconds, remaining)
            result = await self._post(request, wait, retry, started, attempts)
            if isinstance(result, Completion):
                return result, attempts
            last_kind = result.kind
            record = self._attempt(retry, started, None, result.outcome)
            attempts.append(record)
            if retry == endpoint.max_retries:
                break
            delay = backoff_delay(retry, endpoint.backoff_base_seconds,
                                  endpoint.backoff_max_seconds, result.retry_after, self.jitter())
            if self.clock() + delay >= deadline:
                raise LlmFailure(
                    f"{result.outcome}; gave up: waiting {delay:.3g}s to retry would pass the "
                    f"{endpoint.deadline_seconds:g}s deadline", last_kind, attempts)
            record["retry_in_seconds"] = round(delay, 3)
            await self.sleep(delay)
        raise LlmFailure(f"{attempts[-1]['outcome']} (gave up after {len(attempts)} attempts)",
                         last_kind, attempts)

    async def _post(self, request: _Request, wait: float, retry: int,
                    started: float, attempts: list[dict[str, Any]]) -> Completion | _Retryable:
        """One attempt: the completion, or why it may be retried; a reply that retrying cannot
        mend (malformed, or refused with a status that is not retried) raises LlmFailure."""
        try:
            response = await self.http.post(request.url, json=request.payload, headers=request.headers,
                                            timeout=httpx.Timeout(wait))
        except httpx.TimeoutException:
            return _Retryable(f"timed out after {wait:.3g}s", "timeout")
        except httpx.TransportError as exc:
            return _Retryable(f"connection failed: {type(exc).__name__}: {exc}", "error")
        status = response.status_code
        if 200 <= status < 300:
            try:
                completion = parse_completion(response.content, request.prompt_chars)
            except MalformedReply as exc:
                attempts.append(self._attempt(retry, started, status, str(exc)))
                raise LlmFailure(f"malformed reply: {exc}", "error", attempts) from None
            attempts.append(self._attempt(retry, started, status, "ok"))
            return completion
        excerpt = response.text[:200].replace("\n", " ")
        outcome = f"HTTP {status}: {excerpt}"
        if not is_retryable_status(status):
            attempts.append(self._attempt(retry, started, status, outcome))
            raise LlmFailure(f"endpoint refused the request ({outcome})", "error", attempts)
        return _Retryable(outcome, "error", parse_retry_after(response.headers.get("retry-after")))

    def _attempt(self, retry: int, started: float, status: int | None, outcome: str
                 ) -> dict[str, Any]:
        return {"attempt": retry + 1, "status": status, "outcome": outcome[:300],
                "seconds": round(self.clock() - started, 3)}


