"""The kb handler: answers quoted from retrieved passages with citations, declines on weak support.

The support thresholds are checked against paraphrased tickets written for calibration
(tests/data/kb_calibration.yaml), none of which appear in the articles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinworks_contracts.messages import Classification, Draft, TicketEnvelope, TicketSubmission
from pinworks_specialists.handlers import Declined
from pinworks_specialists.kb import KnowledgeBase
from pinworks_specialists.knowledge import KbHandler, retrieve
from pinworks_specialists.settings import Price, SpecialistSettings
from pinworks_specialists.templating import TemplateBook

CALIBRATION = yaml.safe_load(
    (Path(__file__).parent / "data" / "kb_calibration.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def handler() -> KbHandler:
    settings = SpecialistSettings.model_validate({})
    return KbHandler(KnowledgeBase.load(), TemplateBook.load(), Price(per_call=Decimal("0.002")),
                     min_coverage=settings.kb_min_coverage, min_score=settings.kb_min_score)


def envelope(body: str, intent: str | None = None, **ticket: Any) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T-kb", business_unit="retail", body=body, **ticket),
        trace_id="0" * 32, received_at=datetime.now(UTC),
        classification=None if intent is None else Classification(
            intent=intent, confidence=0.4, alternatives=[], out_of_scope=False,
            model_version="t"),
    )


def test_an_answer_quotes_and_cites_its_passages(handler: KbHandler) -> None:
    body = "The cash machine swallowed my card and never gave it back. Thanks, Maria"
    result = asyncio.run(handler.handle(envelope(body, metadata={"customer_name": "Maria"})))
    assert isinstance(result, Draft), result
    assert result.handler == "kb" and result.handler_version.startswith("kb-")
    assert result.cost_usd == Decimal("0.002")
    assert result.answer.startswith("Hi Maria,")
    assert result.answer.rstrip().endswith("Larkspur Bank Support")
    assert result.citations and all(c.startswith("card-retained-by-atm#") for c in result.citations)
    passages = result.details["passages"]
    assert [p["passage_id"] for p in passages] == result.citations
    article = handler.kb.article("card-retained-by-atm")
    assert article is not None
    for passage in passages:
        number = int(passage["passage_id"].split("#")[1])
        assert passage["text"] == article.paragraphs[number - 1]
        assert passage["text"] in result.answer
    assert "#" not in result.answer, "no internal passage ids in the customer's text"
    assert result.details["specialist_intent"] == "card_swallowed"
    assert result.required_terms == list(handler.book.required_terms("card_swallowed"))
    assert any(term in result.answer.lower() for term in result.required_terms)


def test_the_classified_intent_picks_among_close_articles(handler: KbHandler) -> None:
    query = "my top up by card failed"
    plain = retrieve(handler.kb, query)
    assert plain.article_id is not None
    preferred = retrieve(handler.kb, query, intent="top_up_failed")
    assert preferred.article_id in handler.kb.articles_for_intent("top_up_failed")


@pytest.mark.parametrize("body", ["What is a good recipe for a vegetarian lasagne?",
                                  "set an alarm for 7am", "hello", "xqzv blorf"])
def test_weak_support_declines_with_the_measure(handler: KbHandler, body: str) -> None:
    result = asyncio.run(handler.handle(envelope(body)))
    assert isinstance(result, Declined) and result.kind == "declined"
    assert "retrieval support" in result.reason or "no help-centre passage" in result.reason
    assert result.cost_usd == 0


def _answers(handler: KbHandler, body: str) -> Draft | Declined:
    return handler.handle_now(envelope(body))


def test_calibration_thresholds_separate_supported_from_unsupported(handler: KbHandler) -> None:
    supported = CALIBRATION["supported"]
    results = [(_answers(handler, e["query"]), e["article"]) for e in supported]
    answered = [(r, a) for r, a in results if isinstance(r, Draft)]
    right = [r for r, a in answered if r.details["article_id"] == a]
    false_accepts = [q for q in CALIBRATION["unsupported"]
                     if isinstance(_answers(handler, q), Draft)]
    # Measured when the thresholds were set: 45/53 answered, 29 of them from the intended
    # article, 0/25 unsupported answered.
    assert len(answered) / len(supported) >= 0.8
    assert len(right) / len(answered) >= 0.6
    assert false_accepts == []
