"""Specialist handlers through the real platform: kb answers with citations, and LLM failures that
fall down the route's fallback chain (to kb, or to a person) with their reasons on record.

The `llm_small` handler talks to the session's real chat-completions server (`fake_llm` in
conftest.py); each test scripts its replies by a marker in its tickets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pinworks_contracts.messages import (
    Classification,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import WORK_STREAM, routed_subject
from pinworks_devtools.chat_server import ChatServer, Reply, completion

from .conftest import PlatformClient, record_accepted, run_id, ticket

pytestmark = pytest.mark.e2e

ATM_SHORT = "The ATM dispensed less money than I asked for"
CANADA = "I live in Canada, can I still open an account with you?"
VAGUE = "the thing I was sent hasn't shown up"


async def route_directly(client: PlatformClient, ticket_id: str, body: str, intent: str,
                         handler: str, fallbacks: list[str], copy: str = "") -> None:
    """Publish a ticket as the router would have routed it (as a deployment of one handler
    receives it), so the test chooses the handler and its fallback chain. The ticket is
    recorded as accepted first, as the classifier stage would have: later stages trust only
    what the platform recorded."""
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail", body=body),
        trace_id="ab" * 16, received_at=datetime.now(UTC),
        classification=Classification(intent=intent, confidence=0.42, alternatives=[],
                                      out_of_scope=False, model_version="e2e"),
        route=RouteDecision(handler=handler, rule="e2e", reason="chosen by the test",
                            policy_version="e2e", fallbacks=fallbacks),
    )
    await record_accepted(client, envelope)
    await client.js.publish(routed_subject(handler), envelope.model_dump_json().encode(),
                            stream=WORK_STREAM, headers={"Nats-Msg-Id": f"{ticket_id}:routed{copy}"})


async def specialist_rows(client: PlatformClient, ticket_id: str) -> dict[str, Any]:
    """The handlers' decisions (not the agent-assist material recorded for escalations)."""
    rows = await client.fetch(
        "SELECT decision_key, version, inputs, output, reason, cost_usd FROM decisions "
        "WHERE ticket_id = :t AND stage = 'specialist' AND component <> 'specialist:assist' "
        "ORDER BY id", t=ticket_id)
    return {row.decision_key: row for row in rows}


async def ledger(client: PlatformClient, ticket_id: str) -> dict[str, Decimal]:
    rows = await client.fetch("SELECT entry_key, amount_usd, business_unit FROM cost_ledger "
                              "WHERE ticket_id = :t", t=ticket_id)
    assert {row.business_unit for row in rows} <= {"retail"}
    return {row.entry_key: row.amount_usd for row in rows}


def quoting_first_passage(request: dict[str, Any]) -> dict[str, Any]:
    """A scripted model reply that quotes the first passage it was given, citing it."""
    user = request["messages"][1]["content"]
    block = user.split("Help-centre passages:\n\n", 1)[1].split("\n\n", 1)[0]
    header, text = block.split("\n", 1)
    passage_id = header[1:header.index("]")]
    cited = f"{text[:-1]} [{passage_id}]{text[-1]}"  # before the full stop, as instructed
    return completion(f"Hi there,\n\n{cited}\n\nI hope this helps.\n\n"
                      "Best wishes,\nLarkspur Bank Support", prompt_tokens=300,
                      completion_tokens=80)


async def test_kb_answers_with_citations_and_its_cost(client: PlatformClient) -> None:
    ticket_id = f"{run_id()}-kb"
    await route_directly(client, ticket_id, ATM_SHORT, "wrong_amount_of_cash_received", "kb",
                         ["human"])
    [outcome] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    assert outcome["status"] == "resolved", outcome
    assert outcome["handler"] == "kb"
    assert "#" not in outcome["answer"], "passage ids are not for the customer"
    rows = await specialist_rows(client, ticket_id)
    draft = rows["draft:kb"].output["draft"]
    assert draft["citations"] and all(c.startswith("wrong-amount-of-cash#")
                                      for c in draft["citations"])
    assert [p["passage_id"] for p in draft["details"]["passages"]] == draft["citations"]
    assert all(p["text"] in outcome["answer"] for p in draft["details"]["passages"])
    assert draft["details"]["specialist_intent"] == "wrong_amount_of_cash_received"
    assert rows["draft:kb"].version.startswith("kb-")
    assert rows["draft:kb"].inputs["price"]["per_call"] == "0.002"
    assert await ledger(client, ticket_id) == {"draft:kb": Decimal("0.002")}
    assert Decimal(str(outcome["cost_usd"])) == Decimal("0.002")


async def test_llm_failures_fall_back_to_kb_then_to_a_person(
    client: PlatformClient, fake_llm: ChatServer,
) -> None:
    rid = run_id()
    server_error, unavailable = f"{rid}-llm500", f"{rid}-frontier"
    slow, invented = f"{rid}-llmslow", f"{rid}-llminvented"
    fake_llm.when(server_error, Reply(500, {"error": {"message": "overloaded"}}))
    fake_llm.when(slow, Reply(body=quoting_first_passage, delay_seconds=10))
    fake_llm.when(invented, Reply(body=completion(
        "Hi there,\n\nYou can open an account from anywhere [who-can-open-an-account#99].\n\n"
        "Best wishes,\nLarkspur Bank Support")))
    # The ticket id is in the request (in the ticket text) so the script can match it.
    await route_directly(client, server_error, f"{CANADA} Ref {server_error}",
                         "country_support", "llm_small", ["kb", "human"])
    await route_directly(client, unavailable, CANADA, "country_support", "llm_frontier",
                         ["kb", "human"])
    await route_directly(client, slow, f"{CANADA} Ref {slow}", "country_support", "llm_small",
                         ["human"])
    await route_directly(client, invented, f"{CANADA} Ref {invented}", "country_support",
                         "llm_small", ["human"])
    seen = await client.outcomes.wait_for([server_error, unavailable, slow, invented], within=90)

    [fell_back] = seen[server_error]
    assert fell_back["status"] == "resolved" and fell_back["handler"] == "kb", fell_back
    rows = await specialist_rows(client, server_error)
    declined = rows["draft:llm_small"].output
    assert (declined["kind"], declined["next"]) == ("error", "kb")
    assert "HTTP 500" in declined["declined"]
    assert len(declined["details"]["attempts"]) == 2, "one retry (LLM_MAX_RETRIES=1)"
    assert len(fake_llm.requests_containing(server_error)) == 2
    assert rows["draft:kb"].inputs["after"] == ["llm_small"]
    assert await ledger(client, server_error) == {"draft:kb": Decimal("0.002")}

    [no_endpoint] = seen[unavailable]
    assert no_endpoint["status"] == "resolved" and no_endpoint["handler"] == "kb"
    rows = await specialist_rows(client, unavailable)
    assert rows["draft:llm_frontier"].output["kind"] == "unavailable"
    assert "LLM_FRONTIER_BASE_URL is unset" in rows["draft:llm_frontier"].reason

    [timed_out] = seen[slow]
    assert timed_out["status"] == "escalated", timed_out
    assert any(r.startswith("llm_small timeout") for r in timed_out["reasons"]), timed_out

    [refused] = seen[invented]
    assert refused["status"] == "escalated", refused
    assert any("cites passages it was not given" in r and "who-can-open-an-account#99" in r
               for r in refused["reasons"]), refused["reasons"]
    paid = await ledger(client, invented)
    assert set(paid) == {"draft:llm_small"} and paid["draft:llm_small"] > 0, (
        "a refused completion is still paid for, once")
    assert Decimal(str(refused["cost_usd"])) == paid["draft:llm_small"]


async def test_a_cited_llm_answer_resolves_with_tokens_and_cost(
    client: PlatformClient, fake_llm: ChatServer,
) -> None:
    ticket_id = f"{run_id()}-llmok"
    fake_llm.when(ticket_id, Reply(body=quoting_first_passage))
    await route_directly(client, ticket_id, f"{CANADA} Ref {ticket_id}", "country_support",
                         "llm_small", ["kb", "human"])
    [outcome] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    assert outcome["handler"] == "llm_small", outcome["reasons"]
    rows = await specialist_rows(client, ticket_id)
    draft = rows["draft:llm_small"].output["draft"]
    usage = rows["draft:llm_small"].output["usage"]
    assert usage == {"input_tokens": 300, "output_tokens": 80, "tokens_estimated": False}
    expected = Decimal("0.0002") + Decimal("0.0001") * 300 / 1000 + Decimal("0.0004") * 80 / 1000
    assert await ledger(client, ticket_id) == {"draft:llm_small": expected}
    assert draft["citations"] and draft["details"]["passages"][0]["passage_id"] == \
        draft["citations"][0]
    assert rows["draft:llm_small"].version.startswith("scripted-small+")
    [request] = fake_llm.requests_containing(ticket_id)
    assert request.json is not None and request.json["model"] == "scripted-small"
    assert outcome["status"] == "resolved", outcome


async def test_a_vague_ticket_goes_to_a_person_under_the_error_budget(
    client: PlatformClient,
) -> None:
    """The shipped policy's calibrated gates send a ticket read below its intent's threshold to
    a person before any handler answers it (the plausible band no longer reaches a model)."""
    ticket_id = f"{run_id()}-vague"
    await client.submit(ticket(ticket_id, VAGUE))
    [outcome] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    [route] = await client.fetch("SELECT output FROM decisions WHERE ticket_id = :t AND "
                                 "stage = 'router'", t=ticket_id)
    assert 0.25 <= outcome["confidence"] < 0.8, (
        f"the classifier now reads this vague ticket with confidence {outcome['confidence']:.2f}: "
        "pick a text it is unsure of")
    [classified] = await client.fetch("SELECT version, reason FROM decisions WHERE ticket_id = :t "
                                      "AND stage = 'classifier' AND decision_key = 'classify'",
                                      t=ticket_id)
    assert classified.version.startswith("intent-cascade-")
    assert "re-scored by the sentence-embedding stage" in classified.reason
    assert route.output["rule"].startswith("error-budget-"), route.output
    assert route.output["handler"] == "human"
    assert "Learn-then-Test" in route.output["reason"]
    assert outcome["status"] == "escalated"
    assert await specialist_rows(client, ticket_id) == {}


async def test_a_model_tier_ticket_goes_down_its_chain(client: PlatformClient) -> None:
    """A ticket routed to `llm_small` with the plausible band's chain: its (scripted) server
    fails, `llm_frontier` has no endpoint, and the knowledge base or a person takes it."""
    ticket_id = f"{run_id()}-plausible"
    await route_directly(client, ticket_id, VAGUE, "card_arrival", "llm_small",
                         ["llm_frontier", "kb", "human"])
    [outcome] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    rows = await specialist_rows(client, ticket_id)
    assert rows["draft:llm_small"].output["next"] == "llm_frontier"
    assert rows["draft:llm_frontier"].output["kind"] == "unavailable"
    assert rows["draft:kb"].inputs["after"] == ["llm_small", "llm_frontier"]
    if outcome["status"] == "resolved":
        assert outcome["handler"] == "kb"
        assert rows["draft:kb"].output["draft"]["citations"]
    else:
        assert outcome["reasons"], outcome


async def test_a_redelivered_hop_is_not_handled_twice(
    client: PlatformClient, fake_llm: ChatServer,
) -> None:
    ticket_id = f"{run_id()}-again"
    fake_llm.when(ticket_id, Reply(500, b"down"))
    for copy in ("", ":copy"):  # a second copy that JetStream does not deduplicate
        await route_directly(client, ticket_id, f"{CANADA} Ref {ticket_id}", "country_support",
                             "llm_small", ["kb", "human"], copy=copy)
    await client.outcomes.wait_for([ticket_id])
    marker = f"{run_id()}-marker"
    await route_directly(client, marker, ATM_SHORT, "wrong_amount_of_cash_received", "kb",
                         ["human"])
    await client.outcomes.wait_for([marker])
    assert len(client.outcomes.by_ticket[ticket_id]) == 1
    assert len(fake_llm.requests_containing(ticket_id)) == 2, "one call, one retry"
    assert await ledger(client, ticket_id) == {"draft:kb": Decimal("0.002")}


async def test_a_ticket_sent_back_to_automation_is_handled_again(client: PlatformClient) -> None:
    ticket_id = f"{run_id()}-again2"
    body = "It's been twelve days and the new debit card never turned up in the post"
    await route_directly(client, ticket_id, body, "card_arrival", "kb", ["human"])
    [first] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    assert first["status"] == "escalated"
    assert any(r.startswith("kb declined: weak retrieval support") for r in first["reasons"])
    [row] = await client.fetch("SELECT context FROM escalations WHERE ticket_id = :t",
                               t=ticket_id)
    envelope = TicketEnvelope.model_validate(row.context["envelope"])
    assert [hop.handler for hop in envelope.attempts] == ["kb"]
    # What an agent's send-back does: the next automation attempt, on a new route.
    again = envelope.model_copy(update={
        "attempt": 1,
        "route": RouteDecision(handler="kb", rule="e2e", reason="sent back",
                               policy_version="e2e", fallbacks=["template", "human"]),
    })
    await client.js.publish(routed_subject("kb"), again.model_dump_json().encode(),
                            stream=WORK_STREAM, headers={"Nats-Msg-Id": f"{ticket_id}:routed@1"})
    second = (await client.outcomes.wait_for([ticket_id], count=2))[ticket_id][1]
    assert second["status"] == "resolved" and second["handler"] == "template", second["reasons"]
    rows = await specialist_rows(client, ticket_id)
    assert set(rows) == {"draft:kb", "draft:kb@1", "draft:template@1"}
    assert rows["draft:kb@1"].output["next"] == "template", (
        "attempt 0's hops do not count in attempt 1")
    assert rows["draft:template@1"].inputs["after"] == ["kb"]
    assert await ledger(client, ticket_id) == {"draft:template@1": Decimal("0.0005")}
