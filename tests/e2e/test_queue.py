"""The human escalation queue: claim with a lease, resolve, and the human outcome."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from pinworks_common.db.engine import create_engine
from pinworks_escalation.queue import QueueError, claim, resolve, send_back

from .conftest import (
    OUT_OF_SCOPE,
    Platform,
    PlatformClient,
    cli,
    escalate,
    fresh_unit,
    signed_in_env,
    ticket,
)

pytestmark = pytest.mark.e2e

async def test_an_agent_claims_and_resolves_an_escalated_ticket(
    client: PlatformClient, platform: Platform, tmp_path: Path,
) -> None:
    rid, unit = fresh_unit()
    ticket_id = f"{rid}-human"
    [escalated] = (await escalate(client, [ticket_id], unit))[ticket_id]
    assert escalated["status"] == "escalated"
    ana, bo = f"ana-{rid}", f"bo-{rid}"
    as_ana, as_bo = (signed_in_env(platform, tmp_path, name, unit) for name in (ana, bo))

    listed = cli(as_ana, "queue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [item["ticket_id"] for item in json.loads(listed.stdout)] == [ticket_id]

    refused = cli(as_ana, "queue", "resolve", ticket_id, "--reply", "Hi")
    assert refused.returncode == 1
    assert "must claim" in refused.stderr

    claimed = cli(as_ana, "queue", "claim")
    assert claimed.returncode == 0, claimed.stderr + claimed.stdout
    assert f"claimed {ticket_id}" in claimed.stdout
    taken = cli(as_bo, "queue", "claim", ticket_id)
    assert taken.returncode == 1, "a claimed ticket is not handed to a second agent"
    assert f"is claimed by {ana}" in taken.stderr

    reply = "We only handle banking questions, but here is how to reach our travel partner."
    resolved = cli(as_ana, "queue", "resolve", ticket_id, "--reply", reply)
    assert resolved.returncode == 0, resolved.stderr + resolved.stdout
    outcomes = (await client.outcomes.wait_for([ticket_id], count=2))[ticket_id]
    human = outcomes[1]
    assert human["status"] == "resolved"
    assert human["resolved_by"] == ana
    assert human["answer"] == reply
    assert human["trace_id"] == escalated["trace_id"]
    assert human["cost_usd"] > escalated["cost_usd"], "the agent's time is charged too"
    actions = await client.fetch(
        "SELECT actor, action FROM accountability WHERE ticket_id = :t AND actor_type = 'person' "
        "ORDER BY id", t=ticket_id)
    assert [(row.actor, row.action) for row in actions] == [(ana, "claim"), (ana, "resolve")]


async def test_concurrent_agents_never_share_a_ticket_and_leases_expire(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit = fresh_unit()
    ids = [f"{rid}-q{n}" for n in range(8)]
    await escalate(client, ids, unit)

    engine = create_engine(platform.database_url, pool_size=10)

    async def agent_claims(agent: str) -> list[str]:
        mine = []
        while True:
            async with engine.begin() as conn:
                item = await claim(conn, agent, business_units=[unit])
            if item is None:
                return mine
            mine.append(item.ticket_id)

    try:
        claims = await asyncio.gather(*(agent_claims(f"agent-{n}") for n in range(6)))
        flat = [ticket_id for mine in claims for ticket_id in mine]
        assert sorted(flat) == sorted(ids), "every ticket claimed exactly once"

        async with engine.begin() as conn:
            expired = await claim(conn, "late", ticket_id=ids[0], lease=timedelta(seconds=-1))
        assert expired is None, "a live lease is not stolen"
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE escalations SET lease_expires_at = now() - interval '1 second' "
                "WHERE ticket_id = $1", (ids[0],))
        async with engine.begin() as conn:
            reclaimed = await claim(conn, "late", ticket_id=ids[0])
        assert reclaimed is not None and reclaimed.claimed_by == "late"
        owner = next(f"agent-{n}" for n, mine in enumerate(claims) if ids[0] in mine)
        with pytest.raises(QueueError, match="must claim"):
            async with engine.begin() as conn:
                await resolve(conn, ids[0], owner, "too late")
    finally:
        await engine.dispose()


async def test_cli_parity_show_reassign_and_send_back(
    client: PlatformClient, platform: Platform, tmp_path: Path,
) -> None:
    rid, unit = fresh_unit()
    ticket_id = f"{rid}-cli"
    ana, bo = f"ana-{rid}", f"bo-{rid}"
    as_ana, as_bo = (signed_in_env(platform, tmp_path, name, unit) for name in (ana, bo))
    short = cli(platform.env, "agent", "add", f"cy-{rid}", "--business-unit", unit, "--password", "x")
    assert short.returncode == 1 and "at least 8" in short.stdout
    await escalate(client, [ticket_id], unit)

    readable = cli(as_ana, "queue", "show", ticket_id)
    assert readable.returncode == 0, readable.stderr
    assert OUT_OF_SCOPE in readable.stdout and "Why a person:" in readable.stdout
    assert "out-of-scope-to-person" in readable.stdout and not readable.stdout.startswith("{")
    shown = cli(as_ana, "queue", "show", ticket_id, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["envelope"]["route"]["rule"] == "out-of-scope-to-person"
    assert detail["sla_due_at"] and detail["trace_id"]

    assert cli(as_ana, "queue", "claim", ticket_id).returncode == 0
    nobody = cli(as_ana, "queue", "reassign", ticket_id, "--to", "nobody")
    assert nobody.returncode == 1 and "no agent nobody" in nobody.stderr
    handed = cli(as_ana, "queue", "reassign", ticket_id, "--to", bo)
    assert handed.returncode == 0, handed.stdout + handed.stderr
    assert f"{ticket_id} is now held by {bo} until " in handed.stdout
    not_yours = cli(as_ana, "queue", "send-back", ticket_id, "--intent", "lost_or_stolen_card")
    assert not_yours.returncode == 1 and "must claim" in not_yours.stderr
    typo = cli(as_bo, "queue", "send-back", ticket_id, "--intent", "lost_or_stolen_crd")
    assert typo.returncode == 2 and "did you mean lost_or_stolen_card" in typo.stderr
    sent = cli(as_bo, "queue", "send-back", ticket_id, "--intent", "lost_or_stolen_card")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "labelled example agent:1" in " ".join(sent.stdout.split())
    [example] = await client.fetch(
        "SELECT corrected_intent, labelled_by FROM labelled_examples WHERE ticket_id = :t",
        t=ticket_id)
    assert (example.corrected_intent, example.labelled_by) == ("lost_or_stolen_card", bo)
    await client.outcomes.wait_for([ticket_id], count=2)
    listed = json.loads(cli(as_bo, "queue", "list", "--json").stdout)
    assert [(i["ticket_id"], i["status"], i["intent"]) for i in listed] == [
        (ticket_id, "open", "lost_or_stolen_card")]
    exported = cli(platform.env, "queue", "examples")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    mine = [r for r in rows if r["ticket_id"] == ticket_id]
    assert [(r["intent"], r["labelled_by"], r["text"]) for r in mine] == [
        ("lost_or_stolen_card", bo, OUT_OF_SCOPE)]


async def test_a_ticket_sent_back_with_a_corrected_intent_is_answered_by_automation(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit = fresh_unit()
    ticket_id = f"{rid}-sendback"
    body = "Hi, it's about the thing I ordered from you a while ago, it's still not here."
    await client.submit(ticket(ticket_id, body, unit, metadata={"customer_name": "Robin"}))
    [first] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    assert first["status"] == "escalated", "too vague for automation: a person looks first"
    engine = create_engine(platform.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            assert await claim(conn, "dee", ticket_id=ticket_id) is not None
        async with engine.begin() as conn:
            await send_back(conn, ticket_id, "dee", "card_arrival")
    finally:
        await engine.dispose()
    second = (await client.outcomes.wait_for([ticket_id], count=2))[ticket_id][1]
    assert second["status"] == "resolved", second
    assert (second["intent"], second["handler"], second["resolved_by"]) == (
        "card_arrival", "template", "automation")
    assert "Robin" in second["answer"]
    assert second["trace_id"] == first["trace_id"], "the same trace follows the ticket back"
    stages = await client.fetch(
        "SELECT stage, decision_key FROM decisions WHERE ticket_id = :t ORDER BY id", t=ticket_id)
    assert ("router", "route@1") in [(row.stage, row.decision_key) for row in stages]
    [row] = await client.fetch("SELECT status, attempt FROM escalations WHERE ticket_id = :t",
                               t=ticket_id)
    assert (row.status, row.attempt) == ("returned", 0)
