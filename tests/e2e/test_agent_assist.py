"""Urgent customers first and a suggested reply to start from, against the running platform:
the customer-state reading recorded for every ticket, priority and SLA from it, suggestions,
the usefulness record, the customer's earlier tickets and the queue's search, filters and
pages (REST API; the browser tests are in test_console_browser.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from .conftest import OUT_OF_SCOPE, Platform, PlatformClient, ticket
from .test_console import signed_in, unit_with_agent

pytestmark = pytest.mark.e2e

FRAUD = ("There are three payments on my card I didn't authorise. Someone else used my card, "
         "this is fraud.")
OMBUDSMAN = ("This is the third time I am writing about the refund for my cancelled order. It "
             "still does not show up. If it is not sorted this week I will go to the ombudsman.")
LATE_CARD = "I ordered a new card two weeks ago and it still has not arrived. Where is it?"


async def wait_until(check: Any, within: float = 30) -> Any:
    """Poll an API until `check` returns something truthy (the suggestion is recorded by
    another service a moment after the escalation)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def submit_the_four(client: PlatformClient, rid: str, unit: str) -> dict[str, str]:
    ids = {"fraud": f"{rid}-fraud", "ombudsman": f"{rid}-ombudsman", "offtopic": f"{rid}-oos",
           "late": f"{rid}-late"}
    bodies = {"fraud": FRAUD, "ombudsman": OMBUDSMAN, "offtopic": OUT_OF_SCOPE,
              "late": LATE_CARD}
    subjects = {"fraud": "Payments I do not know", "ombudsman": "Refund, again",
                "offtopic": "Weekend plans", "late": "New card"}
    for kind in ("offtopic", "late", "ombudsman", "fraud"):
        await client.submit(ticket(ids[kind], bodies[kind], unit, customer_id=f"cust-{rid}",
                                   subject=subjects[kind], metadata={"first_name": "Alex"}))
    await client.outcomes.wait_for(list(ids.values()))
    return ids


async def _threats_and_fraud_come_first(session: httpx.AsyncClient, ids: dict[str, str]) -> None:
    """The queue's order and each entry's priority, with the reason for it."""
    queue = (await session.get("/api/queue")).json()
    order = [entry["ticket_id"] for entry in queue]
    assert set(order[:2]) == {ids["fraud"], ids["ombudsman"]}, order
    assert order.index(ids["offtopic"]) == 2 and ids["late"] not in order
    by_id = {entry["ticket_id"]: entry for entry in queue}
    ombudsman = by_id[ids["ombudsman"]]
    assert ombudsman["priority"] == 90 and by_id[ids["offtopic"]]["priority"] == 50
    assert ombudsman["priority_because"] == ["legal threat ('ombudsman')"]
    assert ombudsman["sla_status"] == "due"
    assert by_id[ids["fraud"]]["priority_because"][0].startswith("fraud signal")
    assert any("customer state: legal threat" in r for r in ombudsman["reasons"])


async def test_threats_and_fraud_come_first_with_the_reason_and_suggestions_are_recorded(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit, agent = await unit_with_agent(platform, "assist")
    ids = await submit_the_four(client, rid, unit)

    readings = await client.fetch(
        "SELECT ticket_id, output FROM decisions WHERE stage = 'classifier' "
        "AND decision_key = 'customer_state' AND ticket_id LIKE :p", p=f"{rid}-%")
    state = {row.ticket_id: [s["kind"] for s in row.output["signals"]] for row in readings}
    assert state == {ids["fraud"]: ["fraud"], ids["ombudsman"]: ["legal_threat"],
                     ids["offtopic"]: [], ids["late"]: []}, "read once, for every ticket"

    session = await signed_in(platform, agent)
    try:
        await _threats_and_fraud_come_first(session, ids)

        async def suggested() -> list[dict[str, Any]]:
            detail = (await session.get(f"/api/tickets/{ids['ombudsman']}")).json()
            return list(detail["suggestions"])

        suggestions = await wait_until(suggested)
        sources = [s["source"] for s in suggestions]
        assert sources[0].startswith("template:"), sources
        assert "Alex" in suggestions[0]["text"], "the template is filled with the ticket's variables"
        kb = next(s for s in suggestions if s["source"] == "kb")
        assert kb["citations"] and all("#" in c["passage_id"] for c in kb["citations"])

        detail = (await session.get(f"/api/tickets/{ids['ombudsman']}")).json()
        assert detail["customer_state"]["signals"][0]["kind"] == "legal_threat"
        earlier = {e["ticket_id"]: e for e in detail["earlier_tickets"]}
        assert set(earlier) == {ids["fraud"], ids["offtopic"], ids["late"]}
        assert earlier[ids["late"]]["status"] == "resolved"
        assert earlier[ids["late"]]["answer"], "the answer automation sent is shown"
        assert earlier[ids["offtopic"]]["status"] == "escalated"

        assert (await session.post(f"/api/tickets/{ids['ombudsman']}/claim")).status_code == 200
        edited = suggestions[0]["text"].replace("Alex", "Alex, I am sorry this took three tries")
        resolved = await session.post(f"/api/tickets/{ids['ombudsman']}/resolve", json={
            "reply": edited, "suggestion": suggestions[0]["source"]})
        assert resolved.status_code == 200, resolved.text
        [action] = await client.fetch(
            "SELECT details FROM accountability WHERE ticket_id = :t AND action = 'resolve'",
            t=ids["ombudsman"])
        assist = action.details["assist"]
        assert assist["used"] == suggestions[0]["source"]
        assert 0.5 < assist["similarity"] < 1 and not assist["unchanged"]
        intent = detail["intent"]
        report = {r["intent"]: r for r in (await session.get("/api/reports/assist")).json()}
        assert report[intent]["from_suggestion"] == 1
        assert report[intent]["mean_similarity"] == pytest.approx(assist["similarity"], abs=1e-3)
        resolved_entry = (await session.get(f"/api/tickets/{ids['ombudsman']}")).json()
        assert resolved_entry["sla_status"] == "met"
    finally:
        await session.aclose()


async def test_queue_search_filters_sorting_and_pages(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit, agent = await unit_with_agent(platform, "pages")
    ids = [f"{rid}-q{n:02d}" for n in range(7)]
    for n, ticket_id in enumerate(ids):
        body = OUT_OF_SCOPE if n != 3 else "Which museum in Porto would you recommend?"
        await client.submit(ticket(ticket_id, body, unit, customer_id=f"c{n}-{rid}"))
    await client.outcomes.wait_for(ids)
    session = await signed_in(platform, agent)
    try:
        async def page(**params: Any) -> httpx.Response:
            response = await session.get("/api/queue", params=params)
            assert response.status_code == 200, response.text
            return response

        everything = [e["ticket_id"] for e in (await page(sort="oldest")).json()]
        assert sorted(everything) == ids
        first = await page(limit=3, sort="oldest")
        assert first.headers["X-Total-Count"] == "7"
        pages = [e["ticket_id"] for offset in (0, 3, 6)
                 for e in (await page(limit=3, offset=offset, sort="oldest")).json()]
        assert pages == everything, "pages neither repeat nor skip a ticket"
        newest = await page(sort="newest")
        assert [e["ticket_id"] for e in newest.json()] == everything[::-1]
        museum = await page(q="porto")
        assert [e["ticket_id"] for e in museum.json()] == [ids[3]]
        assert [e["ticket_id"] for e in (await page(q=f"c5-{rid}")).json()] == [ids[5]]
        assert (await page(q="100%_")).json() == [], "LIKE wildcards are searched literally"
        intent = first.json()[0]["intent"]
        same = (await page(intent=intent)).json()
        assert same and all(e["intent"] == intent for e in same)
        assert (await page(status="resolved")).json() == []
        refused = await session.get("/api/queue", params={"sort": "random"})
        assert refused.status_code == 422 and "unknown sort" in refused.json()["detail"]
    finally:
        await session.aclose()
