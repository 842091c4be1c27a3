"""Suggested replies assembled from recorded decisions, and the similarity measure."""

from __future__ import annotations

from typing import Any

from pinworks_escalation.assist import compare, similarity, suggestions_for


def decision(stage: str, component: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, "component": component, "output": output}


ASSIST = decision("specialist", "specialist:assist", {
    "templates": [{"intent": "card_arrival", "score": 0.82, "template_id": "card_arrival@1",
                   "text": "Hi Alex,\n\nYour card is on its way.", "variables": {"first_name": "Alex"}}],
    "article": {"article_id": "card-delivery", "title": "Card delivery", "coverage": 0.7},
    "passages": [{"passage_id": "card-delivery#2", "article_id": "card-delivery",
                  "title": "Card delivery", "text": "Cards arrive in 5 days.", "score": 3.1}],
    "kb_reply": "Hi Alex,\n\nCards arrive in 5 days.",
})
MODEL = decision("specialist", "specialist:llm_small", {"draft": {
    "handler": "llm_small", "handler_version": "m", "answer": "Your card ships soon.",
    "citations": ["card-delivery#2"]}})
VERIFIER = decision("verifier", "verifier", {"checks": [
    {"check": "grounding", "passed": False, "reasons": ["grounding: unsupported claim"]}]})


def test_template_first_then_passages_with_citations_then_the_model_draft_unverified() -> None:
    found = suggestions_for({}, [ASSIST, MODEL, VERIFIER])
    assert [s.source for s in found] == ["template:card_arrival", "kb", "draft:llm_small"]
    template, kb, model = found
    assert template.verified is None and "first_name" in template.note
    assert kb.citations[0]["passage_id"] == "card-delivery#2"
    assert model.verified is False
    assert "UNVERIFIED" in model.note and "grounding: unsupported claim" in model.note


def test_nothing_recorded_means_no_suggestion() -> None:
    assert suggestions_for({}, [decision("router", "router", {"handler": "human"})]) == []


def test_how_far_the_sent_reply_is_from_the_suggestion_it_started_from() -> None:
    found = suggestions_for({}, [ASSIST])
    unchanged = compare("Hi Alex,\n\nYour card is on its way.", found, "template:card_arrival")
    assert unchanged["used"] == "template:card_arrival" and unchanged["unchanged"]
    edited = compare("Hi Alex,\n\nYour card is on its way: it left on Monday.", found,
                     "template:card_arrival")
    assert 0.6 < edited["similarity"] < 1 and not edited["unchanged"]
    own = compare("Something else entirely.", found, None)
    assert own["used"] is None and own["closest"] is not None
    assert compare("x", found, "kb-forged-by-the-browser")["used"] is None
    assert similarity("abc", "abc") == 1.0


def test_a_template_for_an_out_of_scope_ticket_says_so() -> None:
    [template, *_] = suggestions_for({"classification": {"out_of_scope": True}}, [ASSIST])
    assert "out of scope" in template.note
