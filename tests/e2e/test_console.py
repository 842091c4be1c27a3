"""The agents' console REST API and pages, against the running escalation service: sign-in,
business-unit scoping, claim / reassign / send back / resolve, concurrency and lease expiry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from pinworks_common.db.engine import create_engine
from pinworks_escalation.queue import save_agent

from .conftest import OUT_OF_SCOPE, Platform, PlatformClient, cli, escalate, fresh_unit, run_id, ticket

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def console_url(platform: Platform) -> str:
    return f"http://127.0.0.1:{platform.env['ESCALATION_HTTP_PORT']}"


async def add_agents(platform: Platform, agents: dict[str, str]) -> None:
    """Register agents directly (the CLI path is covered by the first test)."""
    engine = create_engine(platform.database_url, pool_size=1)
    password_hash = PasswordHasher().hash(PASSWORD)
    try:
        async with engine.begin() as conn:
            for name, unit in agents.items():
                await save_agent(conn, name, password_hash, [unit])
    finally:
        await engine.dispose()


async def unit_with_agent(platform: Platform, label: str) -> tuple[str, str, str]:
    """A fresh run id, a business unit of the run's own (`label-RID`) and one agent serving it."""
    rid, unit = fresh_unit(label)
    agent = f"agent-{unit}"
    await add_agents(platform, {agent: unit})
    return rid, unit, agent


async def signed_in(platform: Platform, name: str) -> httpx.AsyncClient:
    session = httpx.AsyncClient(base_url=console_url(platform), timeout=30)
    response = await session.post("/api/session", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    session.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return session


@dataclass
class Scene:
    """Two units' tickets and three agents: ana and bo serve retail, cy serves business."""

    client: PlatformClient
    platform: Platform
    retail: str
    mine: str
    theirs: str
    ana: str
    bo: str
    cy: str


async def _set_the_scene(client: PlatformClient, platform: Platform) -> tuple[Scene, dict]:
    rid = run_id()
    retail, business = f"retail-{rid}", f"business-{rid}"
    scene = Scene(client, platform, retail, f"{rid}-retail", f"{rid}-business",
                  f"ana-{rid}", f"bo-{rid}", f"cy-{rid}")
    for name, unit in ((scene.ana, retail), (scene.bo, retail), (scene.cy, business)):
        added = cli(platform.env, "agent", "add", name, "--business-unit", unit,
                    "--password", PASSWORD)
        assert added.returncode == 0, added.stderr + added.stdout
    await client.submit(ticket(scene.mine, OUT_OF_SCOPE, retail, subject="Hotel tips",
                               metadata={"tier": "premium", "first_name": "Alex"}))
    await client.submit(ticket(scene.theirs, OUT_OF_SCOPE, business))
    escalated = await client.outcomes.wait_for([scene.mine, scene.theirs])
    assert escalated[scene.mine][0]["status"] == "escalated"
    stored = await client.fetch("SELECT password_hash FROM agents WHERE name = :n", n=scene.ana)
    assert stored[0].password_hash.startswith("$argon2id$"), "passwords are stored hashed"
    assert PASSWORD not in stored[0].password_hash
    return scene, escalated


async def _strangers_are_turned_away(scene: Scene) -> None:
    ana, mine = scene.ana, scene.mine
    async with httpx.AsyncClient(base_url=console_url(scene.platform), timeout=30) as anonymous:
        assert (await anonymous.get("/api/queue")).status_code == 401
        wrong = await anonymous.post("/api/session", json={"name": ana, "password": "nope-nope"})
        assert wrong.status_code == 401
        page = await anonymous.get(f"/tickets/{mine}")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await anonymous.get("/openapi.json")).status_code == 401, "docs need sign-in"
        docs = await anonymous.get("/docs")
        assert docs.status_code == 303 and docs.headers["location"].startswith("/login")


async def _another_unit_sees_nothing(scene: Scene, a: httpx.AsyncClient,
                                     c: httpx.AsyncClient) -> None:
    """Another unit's ticket is invisible: every API action and the page answer 404."""
    mine, cy = scene.mine, scene.cy
    assert (await a.get("/api/me")).json() == {"agent": scene.ana, "business_units": [scene.retail]}
    spec = (await a.get("/openapi.json")).json()
    assert {"/api/queue", "/api/tickets/{ticket_id}/resolve",
            "/api/tickets/{ticket_id}/send-back"} <= set(spec["paths"])
    assert [i["ticket_id"] for i in (await a.get("/api/queue")).json()] == [mine]
    assert [i["ticket_id"] for i in (await c.get("/api/queue")).json()] == [scene.theirs]
    assert (await c.get(f"/api/tickets/{mine}")).status_code == 404
    for action, body in (("claim", None), ("release", None), ("resolve", {"reply": "x"}),
                         ("reassign", {"agent": cy}), ("send-back", {"intent": "travel"})):
        response = await c.post(f"/api/tickets/{mine}/{action}", json=body)
        assert response.status_code == 404, (action, response.text)
    assert (await c.get(f"/tickets/{mine}")).status_code == 404
    assert mine not in (await c.get("/fragments/queue")).text
    assert mine in (await a.get("/fragments/queue")).text
    assert (await c.post(f"/tickets/{mine}/claim")).status_code == 303
    untouched = (await a.get(f"/api/tickets/{mine}")).json()
    assert untouched["status"] == "open" and untouched["claimed_by"] is None


async def _the_whole_context(scene: Scene, a: httpx.AsyncClient, escalated: dict) -> dict:
    """Ticket, classification with alternatives, route, cost, trace; on the page too."""
    mine = scene.mine
    detail: dict = (await a.get(f"/api/tickets/{mine}")).json()
    assert detail["envelope"]["ticket"]["body"] == OUT_OF_SCOPE
    assert len(detail["envelope"]["classification"]["alternatives"]) >= 2
    assert detail["envelope"]["route"]["rule"] == "out-of-scope-to-person"
    assert {d["stage"] for d in detail["decisions"]} >= {"classifier", "router", "escalation"}
    assert detail["cost_usd"] == pytest.approx(escalated[mine][0]["cost_usd"])
    assert detail["trace_id"] == escalated[mine][0]["trace_id"]
    assert detail["tier"] == "premium" and detail["sla_due_at"] and not detail["overdue"]
    html = (await a.get(f"/tickets/{mine}")).text
    for expected in (OUT_OF_SCOPE, "out-of-scope-to-person", detail["trace_id"], "Claim"):
        assert expected in html
    return detail


async def _claim_and_hand_over(scene: Scene, a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    mine = scene.mine
    claimed = await a.post(f"/api/tickets/{mine}/claim")
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == scene.ana
    assert (await b.post(f"/api/tickets/{mine}/claim")).status_code == 409
    refused = await a.post(f"/api/tickets/{mine}/reassign", json={"agent": scene.cy})
    assert refused.status_code == 409 and "does not serve" in refused.json()["detail"]
    handed = await a.post(f"/api/tickets/{mine}/reassign", json={"agent": scene.bo})
    assert handed.status_code == 200 and handed.json()["claimed_by"] == scene.bo
    late = await a.post(f"/api/tickets/{mine}/resolve", json={"reply": "Hello"})
    assert late.status_code == 409 and "must claim" in late.json()["detail"]


async def _send_back_with_a_known_intent(scene: Scene, b: httpx.AsyncClient, detail: dict) -> None:
    client, mine = scene.client, scene.mine
    unknown = await b.post(f"/api/tickets/{mine}/send-back", json={"intent": "travel_advice"})
    assert unknown.status_code == 422 and "unknown intent" in unknown.json()["detail"]
    typo = await b.post(f"/api/tickets/{mine}/send-back", json={"intent": "compromised_crad"})
    assert typo.status_code == 422 and "did you mean compromised_card" in typo.json()["detail"]
    assert not await client.fetch(
        "SELECT 1 FROM labelled_examples WHERE ticket_id = :t", t=mine), (
        "an intent the classifier does not know never becomes training data")
    sent = await b.post(f"/api/tickets/{mine}/send-back", json={"intent": "Compromised card"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["to_intent"] == "compromised_card"
    example = await client.fetch(
        "SELECT text, predicted_intent, corrected_intent, labelled_by, model_version "
        "FROM labelled_examples WHERE ticket_id = :t", t=mine)
    assert [(e.corrected_intent, e.labelled_by) for e in example] == [("compromised_card", scene.bo)]
    assert OUT_OF_SCOPE in example[0].text and example[0].model_version
    assert example[0].predicted_intent == detail["envelope"]["classification"]["intent"]
    second = (await client.outcomes.wait_for([mine], count=2))[mine][1]
    assert (second["status"], second["intent"]) == ("escalated", "compromised_card"), (
        "automation re-ran on the corrected intent, a security intent, and escalated again")
    requeued = (await b.get(f"/api/tickets/{mine}")).json()
    assert requeued["status"] == "open" and requeued["intent"] == "compromised_card"


async def _resolve_with_a_bearer_token(scene: Scene, b: httpx.AsyncClient) -> None:
    """A bearer token works as well as the cookie (HTTP Basic does not); a resolved ticket
    stays resolved."""
    mine, bo = scene.mine, scene.bo
    async with httpx.AsyncClient(base_url=console_url(scene.platform), timeout=30,
                                 auth=(bo, PASSWORD)) as basic:
        refused = await basic.post(f"/api/tickets/{mine}/claim")
        assert refused.status_code == 401
        assert "basic" not in refused.headers.get("www-authenticate", "").lower()
    async with httpx.AsyncClient(base_url=console_url(scene.platform), timeout=30) as script:
        issued = await script.post("/api/tokens", json={"name": bo, "password": PASSWORD})
        assert issued.status_code == 200, issued.text
        script.headers["Authorization"] = f"Bearer {issued.json()['token']}"
        assert (await script.post(f"/api/tickets/{mine}/claim")).status_code == 200
        reply = "We only handle banking questions; our travel partner can help with hotels."
        done = await script.post(f"/api/tickets/{mine}/resolve", json={"reply": reply})
        assert done.status_code == 200, done.text
    human = (await scene.client.outcomes.wait_for([mine], count=3))[mine][2]
    assert (human["status"], human["resolved_by"], human["answer"]) == ("resolved", bo, reply)
    again = await b.post(f"/api/tickets/{mine}/resolve", json={"reply": reply})
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]


async def _every_action_is_accounted_for(scene: Scene) -> None:
    ana, bo = scene.ana, scene.bo
    actions = await scene.client.fetch(
        "SELECT actor, action FROM accountability WHERE ticket_id = :t "
        "AND actor_type = 'person' ORDER BY id", t=scene.mine)
    assert [(r.actor, r.action) for r in actions] == [
        (ana, "claim"), (ana, "reassign"), (bo, "send_back"), (bo, "claim"), (bo, "resolve")]
    assert not await scene.client.fetch(
        "SELECT 1 FROM accountability WHERE ticket_id = :t AND actor_type = 'person'",
        t=scene.theirs), "the refused cross-unit attempts changed nothing"


async def test_agents_see_and_act_only_on_their_business_units(
    client: PlatformClient, platform: Platform,
) -> None:
    scene, escalated = await _set_the_scene(client, platform)
    await _strangers_are_turned_away(scene)
    a, b, c = [await signed_in(platform, name) for name in (scene.ana, scene.bo, scene.cy)]
    try:
        await _another_unit_sees_nothing(scene, a, c)
        detail = await _the_whole_context(scene, a, escalated)
        await _claim_and_hand_over(scene, a, b)
        await _send_back_with_a_known_intent(scene, b, detail)
        await _resolve_with_a_bearer_token(scene, b)
        await _every_action_is_accounted_for(scene)
    finally:
        for session in (a, b, c):
            await session.aclose()


async def test_concurrent_api_claims_never_share_and_expired_leases_return(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit = fresh_unit()
    names = [f"agent{n}-{rid}" for n in range(6)]
    await add_agents(platform, dict.fromkeys(names, unit))
    ids = [f"{rid}-c{n}" for n in range(10)]
    await escalate(client, ids, unit)
    sessions = [await signed_in(platform, name) for name in names]

    async def claim_until_empty(session: httpx.AsyncClient) -> list[str]:
        mine: list[str] = []
        while True:
            response = await session.post("/api/claim-next")
            if response.status_code == 404:
                return mine
            assert response.status_code == 200, response.text
            mine.append(response.json()["ticket_id"])

    try:
        claims = await asyncio.gather(*(claim_until_empty(s) for s in sessions))
        flat = [ticket_id for mine in claims for ticket_id in mine]
        assert sorted(flat) == sorted(ids), f"every ticket claimed exactly once: {claims}"
        owner_index = next(n for n, mine in enumerate(claims) if mine)
        taken = claims[owner_index][0]
        other = sessions[(owner_index + 1) % len(sessions)]
        assert (await other.post(f"/api/tickets/{taken}/claim")).status_code == 409

        async with client.engine.begin() as conn:
            await conn.execute(text(
                "UPDATE escalations SET lease_expires_at = now() - interval '1 second' "
                "WHERE ticket_id = :t"), {"t": taken})
        listed: dict[str, Any] = {
            i["ticket_id"]: i for i in (await other.get("/api/queue")).json()}
        assert listed[taken]["claimed_by"] is None, "an expired lease holds nothing"
        reclaimed = await other.post(f"/api/tickets/{taken}/claim")
        assert reclaimed.status_code == 200 and reclaimed.json()["claimed_by"] != names[owner_index]
        stale = await sessions[owner_index].post(f"/api/tickets/{taken}/resolve",
                                                 json={"reply": "too late"})
        assert stale.status_code == 409 and "must claim" in stale.json()["detail"]
    finally:
        for session in sessions:
            await session.aclose()
