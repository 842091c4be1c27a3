"""The live quality estimate end to end: automatic answers are sampled for review, an agent
signed in with `pinworks login` marks them wrong, the router's guard tightens the business
unit and routes its next ticket to a person with the reason audited, `pinworks report quality`
says so, and only an operator's `pinworks quality loosen` lets automation answer it again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    Platform,
    PlatformClient,
    cli,
    console_says,
    fresh_unit,
    signed_in_env,
    ticket,
)

pytestmark = pytest.mark.e2e

BODY = "How can I change the PIN on my card?"  # change_pin: a template answers it
MIN_REVIEWS = 5  # ROUTER_QUALITY_MIN_REVIEWS in the platform fixture


async def eventually(read: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    """`read()` once it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await read()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing within {within}s")
        await asyncio.sleep(0.2)


async def answered_automatically(client: PlatformClient, ids: list[str], unit: str) -> None:
    for ticket_id in ids:
        await client.submit(ticket(ticket_id, BODY, unit))
    seen = await client.outcomes.wait_for(ids)
    for ticket_id in ids:
        [outcome] = seen[ticket_id]
        assert (outcome["status"], outcome["resolved_by"]) == ("resolved", "automation"), outcome


async def sampled_reviews(agent_env: dict[str, str], unit: str,
                          count: int) -> list[dict[str, Any]]:
    """The pending reviews of `unit` once there are `count`, as its signed-in agent lists them."""
    async def read() -> list[dict[str, Any]] | None:
        listed = cli(agent_env, "quality", "list", "--business-unit", unit, "--json")
        assert listed.returncode == 0, listed.stderr
        reviews: list[dict[str, Any]] = json.loads(listed.stdout)
        return reviews if len(reviews) >= count else None

    reviews: list[dict[str, Any]] = await eventually(read)
    assert {r["source"] for r in reviews} == {"sample"}
    assert {r["intent"] for r in reviews} == {"change_pin"}
    return reviews


async def scope_state(client: PlatformClient, unit: str) -> str | None:
    rows = await client.fetch("SELECT state FROM quality_scopes WHERE kind = 'business_unit' "
                              "AND name = :unit", unit=unit)
    return rows[0].state if rows else None


async def test_wrong_answers_tighten_the_unit_until_an_operator_loosens_it(
        platform: Platform, client: PlatformClient, tmp_path: Path) -> None:
    rid, unit = fresh_unit("quality")
    first = [f"{rid}-{n}" for n in range(MIN_REVIEWS)]
    await answered_automatically(client, first, unit)
    ana = signed_in_env(platform, tmp_path, f"ana-{rid}", unit)
    reviews = await sampled_reviews(ana, unit, MIN_REVIEWS)
    # one fewer verdict than the guard needs judges nothing
    for review in reviews[:-1]:
        marked = cli(ana, "quality", "mark", str(review["id"]), "wrong",
                     "--intent", "card_arrival")
        assert marked.returncode == 0, marked.stderr
    await answered_automatically(client, [f"{rid}-still"], unit)
    marked = cli(ana, "quality", "mark", str(reviews[-1]["id"]), "wrong",
                 "--intent", "card_arrival")
    assert marked.returncode == 0, marked.stderr
    judges = await client.fetch("SELECT DISTINCT reviewed_by FROM quality_reviews "
                                "WHERE business_unit = :unit AND status = 'wrong'", unit=unit)
    assert [j.reviewed_by for j in judges] == [f"ana-{rid}"]

    async def tightened() -> bool:
        return await scope_state(client, unit) == "tightened"

    await eventually(tightened)
    await client.submit(ticket(f"{rid}-after", BODY, unit))
    [after] = (await client.outcomes.wait_for([f"{rid}-after"]))[f"{rid}-after"]
    assert after["status"] == "escalated", after
    assert any("quality guard tightened business_unit " + unit in r for r in after["reasons"])
    [route] = await client.fetch(
        "SELECT output, reason FROM decisions WHERE ticket_id = :t AND stage = 'router'",
        t=f"{rid}-after")
    assert route.output["handler"] == "human" and route.output["rule_handler"] == "template"
    assert f"{MIN_REVIEWS} wrong of {MIN_REVIEWS} judged" in route.output["quality_guard"]
    [account] = await client.fetch(
        "SELECT action FROM accountability WHERE ticket_id = :t AND actor = 'router'",
        t=f"{rid}-after")
    assert "quality guard" in account.action

    report = cli(platform.env, "report", "quality", "--format", "json")
    assert report.returncode == 0, report.stderr
    found = json.loads(report.stdout)
    [scope] = [s for s in found["scopes"] if s["name"] == unit]
    assert (scope["state"], scope["reviewed"], scope["wrong"]) == ("tightened", 5, 5)
    assert scope["upper_bound"] > scope["max_wrong_rate"]
    assert any(e["name"] == unit and e["action"] == "tighten" for e in found["events"])
    table = cli(platform.env, "report", "quality")
    assert unit in table.stdout and "TIGHTENED" in table.stdout

    unknown = cli(platform.env, "quality", "loosen", "business_unit", unit, "--by", "ops",
                  "--reason", "template fixed")
    assert unknown.returncode == 1 and "no agent named 'ops'" in unknown.stdout + unknown.stderr
    assert await scope_state(client, unit) == "tightened"
    loosened = cli(platform.env, "quality", "loosen", "business_unit", unit, "--by",
                   f"ana-{rid}", "--reason", "template fixed")
    assert loosened.returncode == 0, loosened.stderr

    async def loose() -> bool:
        return await scope_state(client, unit) == "ok"

    await eventually(loose)
    # the router rereads the tightened scopes every 0.5 s: wait until it answers again
    async def answers_again() -> bool:
        probe = f"{rid}-probe-{time.monotonic_ns()}"
        await client.submit(ticket(probe, BODY, unit))
        [outcome] = (await client.outcomes.wait_for([probe]))[probe]
        return outcome["status"] == "resolved"

    await eventually(answers_again)
    events = await client.fetch(
        "SELECT action, actor FROM quality_events WHERE name = :unit ORDER BY id", unit=unit)
    assert [(e.action, e.actor) for e in events] == [("tighten", "quality-guard"),
                                                     ("loosen", f"ana-{rid}")]


async def test_an_answer_a_person_resolves_with_another_intent_counts_as_wrong_once(
        platform: Platform, client: PlatformClient) -> None:
    """The customer says the automatic answer missed: an agent reopens the ticket, and its
    resolution with another intent makes that answer a wrong one in the unit's estimate."""
    rid, unit = fresh_unit("corrected")
    wrong, right = f"{rid}-wrong", f"{rid}-right"
    await answered_automatically(client, [wrong, right], unit)
    from pinworks_escalation.queue import QueueError, claim, reopen, resolve

    async with client.engine.begin() as conn:
        with pytest.raises(QueueError, match="no ticket"):
            await reopen(conn, f"{rid}-never", "ana", "customer wrote back")
    for ticket_id, intent in ((wrong, "card_arrival"), (right, None)):
        async with client.engine.begin() as conn:
            await reopen(conn, ticket_id, "ana", "the customer says the answer missed")
        async with client.engine.begin() as conn:
            assert await claim(conn, "ana", ticket_id=ticket_id) is not None
        async with client.engine.begin() as conn:
            await resolve(conn, ticket_id, "ana", "Sorry, here is the right answer.",
                          intent=intent)
    seen = await client.outcomes.wait_for([wrong, right], count=2)
    assert [(o["resolved_by"], o["intent"]) for o in seen[wrong]] == [
        ("automation", "change_pin"), ("ana", "card_arrival")]
    assert seen[right][1]["intent"] == "change_pin"

    async def judged() -> list[Any]:
        rows = await client.fetch(
            "SELECT ticket_id, status, correct_intent, reviewed_by FROM quality_reviews "
            "WHERE business_unit = :unit AND status <> 'pending'", unit=unit)
        scope = await client.fetch("SELECT reviewed, wrong FROM quality_scopes WHERE "
                                   "kind = 'business_unit' AND name = :unit", unit=unit)
        return rows if scope and (scope[0].reviewed, scope[0].wrong) == (1, 1) else []

    [review] = await eventually(judged)
    assert tuple(review) == (wrong, "wrong", "card_arrival", "ana")
    # once: the same correction again adds nothing, and a person's answer is not reopened
    from pinworks_common.quality import store

    async with client.engine.begin() as conn:
        assert await store.record_correction(conn, wrong, "ana", "card_arrival") is None
    [count] = await client.fetch("SELECT count(*) AS n FROM quality_reviews WHERE ticket_id = :t",
                                 t=wrong)
    assert count.n == 1
    async with client.engine.begin() as conn:
        with pytest.raises(QueueError, match="not last answered by automation"):
            await reopen(conn, wrong, "ana", "again")
    actions = await client.fetch(
        "SELECT action FROM accountability WHERE ticket_id = :t AND actor = 'ana' ORDER BY id",
        t=wrong)
    assert [a.action for a in actions] == ["reopen", "claim", "resolve"]


async def estimate_of(client: PlatformClient, unit: str) -> tuple[int, int] | None:
    rows = await client.fetch("SELECT reviewed, wrong FROM quality_scopes WHERE "
                              "kind = 'business_unit' AND name = :unit", unit=unit)
    return (rows[0].reviewed, rows[0].wrong) if rows else None


async def test_an_agent_reopens_and_corrects_an_automatic_answer_from_the_cli(
        platform: Platform, client: PlatformClient, tmp_path: Path) -> None:
    """`pinworks queue reopen` as the unit's agent, then `resolve --intent` with another
    intent: the estimate counts one wrong answer. Another unit's agent is refused as the
    console refuses, and the console's API refuses an unknown intent."""
    rid, unit = fresh_unit("reopened")
    answered = f"{rid}-answered"
    await answered_automatically(client, [answered], unit)
    ana = signed_in_env(platform, tmp_path, f"ana-{rid}", unit)
    cy = signed_in_env(platform, tmp_path, f"cy-{rid}", f"other-{rid}")
    refused = cli(cy, "queue", "reopen", answered, "--reason", "customer wrote back")
    assert (refused.returncode, refused.stderr) == (1, f"error: no ticket {answered}\n")
    assert console_says(platform, cy, "POST", f"/api/tickets/{answered}/reopen",
                        reason="customer wrote back") == (404, f"no ticket {answered}")

    reopened = cli(ana, "queue", "reopen", answered, "--reason", "the answer missed")
    assert reopened.returncode == 0, reopened.stderr
    assert reopened.stdout.startswith(f"reopened {answered} (priority ")
    again = cli(ana, "queue", "reopen", answered, "--reason", "twice")
    assert again.returncode == 0, "still automation's answer until a person resolves it"
    assert cli(ana, "queue", "claim", answered).returncode == 0
    status, detail = console_says(platform, ana, "POST", f"/api/tickets/{answered}/resolve",
                                  reply="Hi", intent="card_arival")
    assert status == 422 and "card_arrival" in detail, detail
    resolved = cli(ana, "queue", "resolve", answered, "--reply", "Your card is on its way.",
                   "--intent", "card arrival")
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["intent"] == "card_arrival"
    human = (await client.outcomes.wait_for([answered], count=2))[answered][1]
    assert (human["resolved_by"], human["intent"]) == (f"ana-{rid}", "card_arrival")

    async def counted() -> tuple[int, int] | None:
        estimate = await estimate_of(client, unit)
        return estimate if estimate and estimate[0] else None

    assert await eventually(counted) == (1, 1)
    closed = cli(ana, "queue", "reopen", answered, "--reason", "again")
    assert (closed.returncode, closed.stderr) == (
        1, f"error: {answered} was not last answered by automation\n")
    actions = await client.fetch(
        "SELECT action, details->>'reason' AS reason FROM accountability WHERE ticket_id = :t "
        "AND actor_type = 'person' ORDER BY id", t=answered)
    assert [(a.action, a.reason) for a in actions] == [
        ("reopen", "the answer missed"), ("reopen", "twice"), ("claim", None), ("resolve", None)]
