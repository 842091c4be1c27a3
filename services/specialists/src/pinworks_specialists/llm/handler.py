"""The `llm` handlers: a chat-completions model answering from retrieved passages, with checked
citations. The ticket's personal data is sent as numbered placeholders and only the placeholders
the reply uses are put back. Without an endpoint every ticket is declined as ``unavailable``,
with no network call."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from pinworks_common.personal_data import Pseudonyms, known_names
from pinworks_contracts.messages import Draft, TicketEnvelope
from pinworks_specialists.breaker import CircuitBreaker
from pinworks_specialists.handlers import Declined, cost_of
from pinworks_specialists.kb import KnowledgeBase, Passage
from pinworks_specialists.knowledge import ticket_query
from pinworks_specialists.llm.client import CHARS_PER_TOKEN, ChatClient, Completion, LlmFailure
from pinworks_specialists.llm.prompt import (
    NO_ANSWER,
    PROMPT_VERSION,
    build_messages,
    check_citations,
    strip_citations,
)
from pinworks_specialists.settings import LlmEndpoint, Price


class LlmHandler:
    """A chat-completions model answering from retrieved passages, with checked citations."""

    def __init__(self, endpoint: LlmEndpoint, kb: KnowledgeBase, price: Price,
                 http: httpx.AsyncClient | None = None, *,
                 sleep: Callable[[float], Any] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.name = endpoint.name
        self.endpoint = endpoint
        self.kb = kb
        self.price = price
        self.version = f"{endpoint.model or 'unconfigured'}+{PROMPT_VERSION}+{kb.version}"
        self.available = bool(endpoint.base_url)
        self._http = http
        self._owns_http = http is None
        self._sleep = sleep
        self._jitter = jitter
        self.breaker = CircuitBreaker(endpoint.breaker_failures, endpoint.breaker_cooldown_seconds)

    @property
    def unavailable_reason(self) -> str:
        return f"no endpoint configured ({self.endpoint.env_prefix}_BASE_URL is unset)"

    def _token_bound(self) -> str:
        endpoint = self.endpoint
        if endpoint.max_reasoning_tokens is None:
            return f"max_tokens={endpoint.max_tokens}"
        return (f"max_completion_tokens={endpoint.max_tokens + endpoint.max_reasoning_tokens} "
                f"(answer {endpoint.max_tokens} + reasoning quota {endpoint.max_reasoning_tokens})")

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        return self._http

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        if not self.available:
            return Declined(self.unavailable_reason, kind="unavailable")
        ticket = envelope.ticket
        passages = self.kb.search(ticket_query(ticket.subject, ticket.body),
                                  k=self.endpoint.passages)
        if not passages:
            return Declined("no help-centre passage matches the ticket: nothing to ground an "
                            "answer on, the model was not asked")
        if not self.breaker.allow():
            return Declined(f"{self.name}: {self.breaker.describe()}", kind="unavailable",
                            details={"circuit": self.breaker.state})
        pseudonyms = Pseudonyms(known_names=known_names(ticket.metadata))
        messages = build_messages(ticket.subject, ticket.body, passages, pseudonyms.apply)
        client = ChatClient(self.endpoint, self._client(), sleep=self._sleep, jitter=self._jitter)
        host = urlsplit(self.endpoint.base_url or "").netloc
        base_details: dict[str, Any] = {"model": self.endpoint.model, "endpoint": host,
                                        "given_passages": [p.passage_id for p in passages],
                                        "placeholders_sent": pseudonyms.counts}
        try:
            completion, attempts = await client.complete(messages)
        except LlmFailure as failure:
            if failure.kind in ("error", "timeout"):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            return Declined(f"{self.name}: {failure.reason}", kind=failure.kind,
                            details={**base_details, "attempts": failure.attempts})
        self.breaker.record_success()
        return self._judge(envelope, passages, completion, pseudonyms,
                           {**base_details, "attempts": attempts})

    def _judge(self, envelope: TicketEnvelope, passages: Sequence[Passage], completion: Completion,
               pseudonyms: Pseudonyms, details: dict[str, Any]) -> Draft | Declined:
        """The reply as a draft with the customer's own values put back where it uses their
        placeholders, or declined: no answer, cut off, citations not as asked, or a placeholder
        that was never issued (the raw reply in details holds placeholders, not data)."""
        cost = cost_of(self.price, completion.input_tokens, completion.output_tokens)
        details = {**details, **_usage(completion)}
        answer = completion.content.strip()
        if not answer or answer == NO_ANSWER or answer.startswith(NO_ANSWER):
            return Declined("the model found no answer in the retrieved passages",
                            cost_usd=cost, details=details)
        if completion.finish_reason == "length":
            return Declined(f"the reply was cut off at {self._token_bound()}",
                            cost_usd=cost, details={**details, "answer": answer[:2000]})
        check = check_citations(answer, [p.passage_id for p in passages])
        if check.invented:
            return Declined(f"the reply cites passages it was not given: {check.invented}",
                            cost_usd=cost, details={**details, "answer": answer[:2000]})
        if not check.cited:
            return Declined("the reply cites no passage", cost_usd=cost,
                            details={**details, "answer": answer[:2000]})
        restored = pseudonyms.restore(answer)
        if restored.unknown:
            return Declined(f"the reply uses placeholders it was not given: {restored.unknown}",
                            cost_usd=cost, details={**details, "answer": answer[:2000]})
        by_id = {p.passage_id: p for p in passages}
        return Draft(
            handler=self.name,
            handler_version=self.version,
            answer=strip_citations(restored.text),
            cost_usd=cost,
            citations=check.cited,
            details={
                **details,
                "specialist_intent": self._specialist_intent(envelope, passages, check.cited),
                "answer_with_citations": restored.text,
                "placeholders_restored": restored.used,
                "passages": [{"passage_id": pid, "text": by_id[pid].text} for pid in check.cited],
            },
        )

    def _specialist_intent(self, envelope: TicketEnvelope, passages: Sequence[Passage],
                           cited: Sequence[str]) -> str | None:
        """The intent the answer reads as: the classified one when the best-ranked cited
        passage's article covers it, else that article's first intent."""
        by_id = {p.passage_id: p for p in passages}
        rank = {p.passage_id: n for n, p in enumerate(passages)}
        best = by_id[min(cited, key=rank.__getitem__)]
        article = self.kb.article(best.article_id)
        classification = envelope.classification
        intent = classification.intent if classification else None
        return (intent if article and intent in article.intents
                else article.intents[0] if article else None)

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None


def _usage(completion: Completion) -> dict[str, Any]:
    """What the reply says about itself and its tokens (estimated when it reports none)."""
    usage: dict[str, Any] = {
        "reply_model": completion.model,
        "finish_reason": completion.finish_reason,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "tokens_estimated": completion.tokens_estimated,
    }
    if completion.reasoning_tokens is not None:
        usage["reasoning_tokens"] = completion.reasoning_tokens
    if completion.tokens_estimated:
        usage["tokens_note"] = (f"the reply had no usage; tokens estimated at "
                                f"{CHARS_PER_TOKEN} characters per token")
    return usage
