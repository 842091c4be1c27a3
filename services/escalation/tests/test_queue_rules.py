"""The queue's plain rules, without Postgres: who holds a claim, agents' names and units, the
correction an agent sends back, the router hand-off, the human outcome and the assist report."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from pinworks_common.ledger import Entries, Ledger, OutcomeEntry, Publication
from pinworks_common.ledger.memory import MemoryStore
from pinworks_contracts.messages import utcnow
from pinworks_contracts.subjects import CLASSIFIED, OUTCOMES_STREAM, WORK_STREAM, OutcomeStatus
from pinworks_escalation.queue import CLAIMED, OPEN, RESOLVED, QueueError
from pinworks_escalation.queue.actions import check_held, holds, resolved_outcome
from pinworks_escalation.queue.agent_store import agent_units
from pinworks_escalation.queue.corrections import corrected_context, corrected_intent_name
from pinworks_escalation.queue.handoff import HUMAN_OUTCOME_KEY, automation_retry
from pinworks_escalation.queue.listing import like_pattern
from pinworks_escalation.queue.reports import usefulness_by_intent

NOW = utcnow()
CLASSIFICATION = {"intent": "card_arrival", "confidence": 0.4, "alternatives": [],
                  "out_of_scope": False, "model_version": "clf-1"}
ENVELOPE = {"ticket": {"ticket_id": "T-1", "business_unit": "retail", "body": "Where is it?",
                       "subject": "Card"},
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "received_at": NOW.isoformat(),
            "classification": CLASSIFICATION, "attempt": 0}


def row(status: str = CLAIMED, claimed_by: str | None = "ana", lease: timedelta | None = None,
        **context: Any) -> SimpleNamespace:
    return SimpleNamespace(
        ticket_id="T-1", business_unit="retail", status=status, claimed_by=claimed_by,
        lease_expires_at=NOW + lease if lease is not None else None, resolved_by="bo",
        trace_id="trace", context={"envelope": ENVELOPE, **context})


def test_a_claim_is_held_by_its_agent_until_the_lease_runs_out() -> None:
    assert holds(row(lease=timedelta(minutes=5)), "ana", NOW)
    assert holds(row(lease=None), "ana", NOW), "a claim without a lease end never expires"
    assert not holds(row(lease=-timedelta(seconds=1)), "ana", NOW)
    assert not holds(row(lease=timedelta(minutes=5)), "bo", NOW)
    assert not holds(row(status=OPEN, claimed_by=None), "ana", NOW)


def test_acting_needs_a_live_claim_on_an_unresolved_ticket() -> None:
    check_held(row(lease=timedelta(minutes=5)), "ana", NOW, "resolving it")
    with pytest.raises(QueueError, match="already resolved by bo"):
        check_held(row(status=RESOLVED), "ana", NOW, "resolving it")
    with pytest.raises(QueueError, match="bo must claim T-1 before sending it back"):
        check_held(row(lease=timedelta(minutes=5)), "bo", NOW, "sending it back")


def test_agent_names_and_units_are_checked_and_units_deduplicated() -> None:
    assert agent_units("ana.b@x", [" retail", "cards", "retail ", ""]) == ["cards", "retail"]
    with pytest.raises(QueueError, match="agent name"):
        agent_units("ana b", ["retail"])
    with pytest.raises(QueueError, match="at least one business unit"):
        agent_units("ana", [" ", ""])
    with pytest.raises(QueueError, match="at most 64"):
        agent_units("ana", ["u" * 65])


def test_search_text_matches_literally() -> None:
    assert like_pattern(" 50%_off\\ ") == "%50\\%\\_off\\\\%"


def test_a_corrected_intent_is_a_plain_name() -> None:
    assert corrected_intent_name("  card_arrival ") == "card_arrival"
    for bad in ("Card arrival", "", "x" * 65, "card-arrival"):
        with pytest.raises(QueueError, match="lowercase"):
            corrected_intent_name(bad)


def test_a_correction_replaces_the_classification_and_is_noted() -> None:
    earlier = {"by": "bo", "to": "card_arrival"}
    context = {"envelope": ENVELOPE, "corrections": [earlier], "priority_because": ["x"]}
    corrected = corrected_context(context, "ana", "lost_or_stolen_card", "agent:2", NOW)
    assert corrected["envelope"]["classification"] == {
        **CLASSIFICATION, "intent": "lost_or_stolen_card", "corrected_by": "ana"}
    assert corrected["corrections"] == [earlier, {
        "by": "ana", "at": NOW.isoformat(), "from": "card_arrival",
        "to": "lost_or_stolen_card", "example_key": "agent:2"}]
    assert corrected["priority_because"] == ["x"]
    assert context["envelope"]["classification"] is CLASSIFICATION, "the row's context is kept"
    unclassified = corrected_context({"envelope": {"ticket": {}}}, "ana", "x", "agent:1", NOW)
    assert "classification" not in unclassified["envelope"]


def test_the_router_gets_the_agents_classification_as_the_next_attempt() -> None:
    envelope = {**ENVELOPE, "route": {"handler": "human"}, "draft": {"text": "x"}}
    publication = automation_retry("T-1", envelope, "ana", 2)
    sent = json.loads(publication.payload)
    assert (publication.subject, publication.stream) == (CLASSIFIED, WORK_STREAM)
    assert publication.msg_id == "T-1:classified:agent:2"
    assert sent["attempt"] == 2 and sent["route"] is None and sent["draft"] is None
    assert sent["classification"] | {"alternatives": []} == {
        **CLASSIFICATION, "confidence": 1.0, "model_version": "agent:ana"}
    trace, span = publication.headers["traceparent"].split("-")[1:3]
    assert trace == ENVELOPE["trace_id"] and len(span) == 16


def test_the_human_outcome_is_published_once_per_ticket_under_an_unguessable_id() -> None:
    outcome = resolved_outcome(row(), "ana", "It is on its way.", Decimal("1.25"), NOW)
    assert (outcome.status, outcome.handler, outcome.resolved_by) == (
        OutcomeStatus.RESOLVED, "human", "ana")
    assert (outcome.intent, outcome.confidence, outcome.cost_usd) == (
        "card_arrival", 0.4, Decimal("1.25"))
    ledger = Ledger(MemoryStore())

    def record() -> Publication:
        entries = Entries(outcomes=[OutcomeEntry(HUMAN_OUTCOME_KEY, outcome)])
        return asyncio.run(ledger.record(entries)).outcome_publications[0]

    publication, again = record(), record()
    assert publication == again, "a retry republishes under the stored id"
    assert publication.msg_id.startswith("T-1:outcome:human:")
    assert len(publication.msg_id) > len("T-1:outcome:human:") + 20
    assert publication.stream == OUTCOMES_STREAM and publication.headers == {}


def test_the_assist_report_counts_only_replies_with_suggestions_on_offer() -> None:
    report = usefulness_by_intent([
        {"intent": "card_arrival", "assist": {"used": True, "similarity": 1.0,
                                               "unchanged": True, "closest_similarity": 1.0}},
        {"intent": "card_arrival", "assist": {"used": True, "similarity": 0.5,
                                               "closest_similarity": 0.6}},
        {"intent": "card_arrival", "assist": {"used": False, "closest_similarity": 0.2}},
        {"intent": "card_arrival"},
        {"assist": {"used": False}},
    ])
    assert report == [
        {"intent": "-", "intent_label": "-", "resolved": 1, "from_suggestion": 0,
         "mean_similarity": None, "unchanged": 0, "mean_closest_similarity": None},
        {"intent": "card_arrival", "intent_label": "Card arrival", "resolved": 3,
         "from_suggestion": 2, "mean_similarity": 0.75, "unchanged": 1,
         "mean_closest_similarity": 0.6},
    ]
