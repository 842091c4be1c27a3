"""Pure pieces of the specialists: backoff, Retry-After, citation parsing, reply parsing, and the
fallback chain with its idempotent hop ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from pinworks_contracts.messages import (
    Classification,
    Draft,
    HandlerAttempt,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import DRAFTED, ESCALATION_REQUESTED, routed_subject
from pinworks_specialists.fallback import HUMAN, next_handler, publication_for, settle
from pinworks_specialists.handlers import Declined
from pinworks_specialists.llm import (
    MalformedReply,
    backoff_delay,
    check_citations,
    is_retryable_status,
    parse_completion,
    parse_retry_after,
    strip_citations,
)


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(n, 0.5, 8.0, jitter=1.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert [backoff_delay(n, 0.5, 8.0, jitter=0.0) for n in range(6)] == [0.25, 0.5, 1, 2, 4, 4]
    assert backoff_delay(2, 0.5, 8.0, jitter=0.5) == 1.5


def test_retry_after_is_never_undercut() -> None:
    assert backoff_delay(0, 0.5, 8.0, retry_after=3.0, jitter=1.0) == 3.0
    assert backoff_delay(4, 0.5, 8.0, retry_after=0.1, jitter=1.0) == 8.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    for junk in (None, "", "soon", "Mon, 99 Foo"):
        assert parse_retry_after(junk, now) is None


def test_retryable_statuses() -> None:
    assert [s for s in (200, 400, 401, 404, 408, 429, 500, 502, 503, 504) if is_retryable_status(s)
            ] == [429, 500, 502, 503, 504]


def test_citations_are_parsed_and_checked() -> None:
    known = ["card-not-arrived#1", "card-not-arrived#4", "change-your-pin#2"]
    check = check_citations(
        "It takes 3-5 days [card-not-arrived#1]. Then [card-not-arrived#4, change-your-pin#2]; "
        "also [card-not-arrived#1] again and [made-up#7]. See [our app] or [1].", known)
    assert check.cited == ["card-not-arrived#1", "card-not-arrived#4", "change-your-pin#2"]
    assert check.invented == ["made-up#7"]
    assert check_citations("No citations here.", known).cited == []
    assert check_citations("[ 'change-your-pin#2' ]", known).cited == ["change-your-pin#2"]


def test_parse_completion_reads_usage_or_estimates() -> None:
    body = {"model": "m", "choices": [{"message": {"content": "Hello [a#1]."},
                                       "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
    parsed = parse_completion(json.dumps(body).encode(), prompt_chars=400)
    assert (parsed.content, parsed.input_tokens, parsed.output_tokens) == ("Hello [a#1].", 11, 3)
    assert parsed.tokens_estimated is False and parsed.finish_reason == "stop"
    del body["usage"]
    parsed = parse_completion(json.dumps(body).encode(), prompt_chars=400)
    assert (parsed.input_tokens, parsed.output_tokens, parsed.tokens_estimated) == (100, 3, True)
    body["usage"] = {"prompt_tokens": "many"}
    assert parse_completion(json.dumps(body).encode(), 8).tokens_estimated is True


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"{}", b'{"choices": "x"}',
                                 b'{"choices": [{"message": "hi"}]}', b"\xff\xfe"])
def test_malformed_replies_are_named(raw: bytes) -> None:
    with pytest.raises(MalformedReply):
        parse_completion(raw, 10)


def _envelope(handler: str, fallbacks: list[str], attempts: list[str] = ()) -> TicketEnvelope:  # type: ignore[assignment]
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T-9", business_unit="retail", body="where is my card"),
        trace_id="0" * 32, received_at=datetime.now(UTC),
        classification=Classification(intent="card_arrival", confidence=0.9, alternatives=[],
                                      out_of_scope=False, model_version="t"),
        route=RouteDecision(handler=handler, rule="r", reason="r", policy_version="p",
                            fallbacks=fallbacks),
        attempts=[HandlerAttempt(handler=a, handler_version="1", result="error", reason="x")
                  for a in attempts],
    )


@pytest.mark.parametrize(("handler", "fallbacks", "current", "attempts", "expected"), [
    ("template", ["kb", "human"], "template", [], "kb"),
    ("template", ["kb", "human"], "kb", ["template"], HUMAN),
    ("llm_small", ["llm_frontier", "kb"], "llm_frontier", ["llm_small"], "kb"),
    ("llm_small", ["llm_frontier", "kb"], "kb", ["llm_small", "llm_frontier"], HUMAN),
    ("template", [], "template", [], HUMAN),
    ("template", ["human", "kb"], "template", [], HUMAN),
    ("kb", ["template", "kb", "template"], "template", ["kb"], HUMAN),  # never loops
    ("template", ["kb"], "llm_small", [], "template"),  # not in the chain: start from the top
])
def test_next_handler_walks_the_chain_once(handler: str, fallbacks: list[str], current: str,
                                           attempts: list[str], expected: str) -> None:
    env = _envelope(handler, fallbacks, attempts)
    assert next_handler(env.route, current, env.attempts) == expected


def test_a_hop_carries_the_attempt_and_has_its_own_message_id() -> None:
    env = _envelope("template", ["kb", "llm_frontier", "human"])
    out = settle(env, "template", "tpl-1", Declined("no template for intent x"))
    first = publication_for(env, out, {"traceparent": "tp"}, "template")
    assert (first.subject, first.msg_id) == (routed_subject("kb"), "T-9:routed:kb")
    assert first.headers == {"traceparent": "tp"}
    hopped = TicketEnvelope.model_validate_json(first.payload)
    out2 = settle(hopped, "kb", "kb-1", Declined("weak support", cost_usd=Decimal("0.002")))
    second = publication_for(hopped, out2, {}, "kb")
    assert (second.subject, second.msg_id) == (routed_subject("llm_frontier"),
                                               "T-9:routed:llm_frontier")
    again = TicketEnvelope.model_validate_json(second.payload)
    assert [(a.handler, a.result, a.cost_usd) for a in again.attempts] == [
        ("template", "declined", Decimal(0)), ("kb", "declined", Decimal("0.002"))]
    out3 = settle(again, "llm_frontier", "f-1", Declined("no endpoint", kind="unavailable"))
    assert out3["next"] == HUMAN
    last = publication_for(again, out3, {}, "llm_frontier")
    assert (last.subject, last.msg_id) == (ESCALATION_REQUESTED, "T-9:escalate")
    reasons = json.loads(last.payload)["reasons"]
    assert reasons[:3] == ["template declined: no template for intent x",
                           "kb declined: weak support", "llm_frontier unavailable: no endpoint"]


def test_a_draft_goes_to_the_verifier() -> None:
    env = _envelope("kb", ["human"])
    draft = Draft(handler="kb", handler_version="1", answer="Hi", cost_usd=Decimal("0.002"),
                  citations=["a#1"])
    publication = publication_for(env, settle(env, "kb", "1", draft), {}, "kb")
    assert (publication.subject, publication.msg_id) == (DRAFTED, "T-9:drafted")
    assert TicketEnvelope.model_validate_json(publication.payload).draft == draft


def test_an_output_recorded_before_fallbacks_existed_still_escalates() -> None:
    env = _envelope("template", ["human"])
    publication = publication_for(env, {"declined": "no template"}, {}, "template")
    assert publication.subject == ESCALATION_REQUESTED
    assert json.loads(publication.payload)["reasons"] == ["template declined: no template"]


def test_citation_markers_are_removed_from_the_customer_text() -> None:
    assert strip_citations("Cards arrive in 3-5 days [card-not-arrived#2]. Freeze it "
                           "[a#1, b#2]; then call.\nSee [our app] [1].") == (
        "Cards arrive in 3-5 days. Freeze it; then call.\nSee [our app] [1].")


def test_a_ticket_sent_back_to_automation_walks_its_new_chain_afresh() -> None:
    earlier = _envelope("kb", ["human"], ["kb"])  # attempt 0: kb declined, a person took it
    again = earlier.model_copy(update={"attempt": 1})
    assert next_handler(again.route, "template", []) == "kb"
    out = settle(again, "template", "tpl-1", Declined("no template"))
    assert out["next"] == "kb", "kb's decline in attempt 0 does not count in attempt 1"
    assert out["hop"]["automation_attempt"] == 1
    hop = publication_for(again, out, {}, "template")
    assert (hop.subject, hop.msg_id) == (routed_subject("kb"), "T-9:routed:kb@1")
    passed = TicketEnvelope.model_validate_json(hop.payload)
    last = publication_for(passed, settle(passed, "kb", "kb-1", Declined("weak")), {}, "kb")
    assert last.msg_id == "T-9:escalate@1"
    assert json.loads(last.payload)["reasons"][:2] == ["template declined: no template",
                                                       "kb declined: weak"]
    draft = Draft(handler="kb", handler_version="1", answer="Hi", cost_usd=Decimal(0))
    assert publication_for(again, settle(again, "kb", "1", draft), {}).msg_id == "T-9:drafted@1"
