"""The `llm` handlers: an OpenAI-compatible chat-completions client answering from retrieved passages.

The model is given the ticket and the help-centre passages BM25 retrieved for it, and told to
answer only from them and cite each passage it uses as ``[passage_id]``. The reply is accepted
only if every citation names a passage it was given and it cites at least one; the customer's text
is the reply without the markers (the draft keeps them as `citations`, the raw reply in details).
Requests time out; 429 and 5xx replies, timeouts and connection errors are retried with
exponential backoff and jitter, honouring ``Retry-After``, all within a per-ticket deadline.
Tokens come from the reply's ``usage`` (estimated from characters when absent, and marked so);
cost from the price table.

With no endpoint configured the handler declines every ticket as ``unavailable`` without any
network call: the route's fallback applies. It never writes an answer of its own.
"""

from pinworks_specialists.llm.client import (
    CHARS_PER_TOKEN,
    ChatClient,
    Completion,
    LlmFailure,
    MalformedReply,
    backoff_delay,
    estimate_tokens,
    is_retryable_status,
    parse_completion,
    parse_retry_after,
    reasoning_tokens_of,
    request_payload,
)
from pinworks_specialists.llm.handler import LlmHandler
from pinworks_specialists.llm.prompt import (
    CITATION_RE,
    NO_ANSWER,
    PASSAGE_ID_RE,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    TICKET_CLOSE,
    TICKET_OPEN,
    CitationCheck,
    build_messages,
    check_citations,
    fence_ticket,
    strip_citations,
)

__all__ = [
    "CHARS_PER_TOKEN", "CITATION_RE", "NO_ANSWER", "PASSAGE_ID_RE", "PROMPT_VERSION", "SYSTEM_PROMPT",
    "TICKET_CLOSE", "TICKET_OPEN", "ChatClient", "CitationCheck", "Completion", "LlmFailure",
    "LlmHandler", "MalformedReply", "backoff_delay", "build_messages", "check_citations",
    "estimate_tokens", "fence_ticket", "is_retryable_status", "parse_completion", "parse_retry_after",
    "reasoning_tokens_of", "request_payload", "strip_citations",
]
