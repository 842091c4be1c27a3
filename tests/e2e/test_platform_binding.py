"""A support platform submits only for the business units it is bound to: the platform is the
one its submission subject names (NATS lets only its identity publish there), the unit is
checked against `CLASSIFIER_PLATFORM_UNITS`, and anything else is a `rejected` outcome. Its
ticket ids are its own namespace: another platform's same id is another ticket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pinworks_common.nats_client import watch_platform_outcomes
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import RESERVED_SEPARATOR

from .conftest import (
    OUT_OF_SCOPE,
    PARTNER,
    Platform,
    PlatformClient,
    cli,
    fresh_unit,
    signed_in_env,
    ticket,
)

pytestmark = pytest.mark.e2e

BODY = "My new card has still not arrived, when will it come?"


async def test_a_platform_submitting_for_a_unit_it_is_not_bound_to_is_rejected(
    client: PlatformClient,
) -> None:
    rid, foreign_unit = fresh_unit("retail")
    foreign, own = f"{rid}-foreign", f"{rid}-own"
    seq = await client.submit(ticket(foreign, BODY, foreign_unit), platform=PARTNER)
    await client.submit(ticket(own, BODY, f"{PARTNER}-{rid}"), platform=PARTNER)
    outcomes = await client.outcomes.wait_for([foreign, own])

    [rejected] = outcomes[foreign]
    assert rejected["status"] == "rejected"
    assert rejected["business_unit"] == foreign_unit
    assert rejected["reasons"] == [f"business_unit: support platform '{PARTNER}' may not submit "
                                   f"for business unit '{foreign_unit}'"]
    assert outcomes[own][0]["status"] != "rejected", "its own unit is accepted"
    assert [o["platform"] for o in (rejected, outcomes[own][0])] == [PARTNER, PARTNER], \
        "each outcome goes to the submitting platform's tickets.outcome.<status>.partner"
    assert rejected["pinworks_ticket_id"] == f"{PARTNER}~{foreign}"
    for table in ("tickets", "decisions", "cost_ledger", "accountability", "escalations"):
        rows = await client.fetch(f"SELECT 1 FROM {table} WHERE ticket_id = :t",
                                  t=f"{PARTNER}~{foreign}")
        assert rows == [], f"{table} holds the rejected ticket"
    [kept] = await client.fetch(
        "SELECT subject, ticket_id, business_unit, reasons FROM rejected_payloads "
        "WHERE stream_seq = :s", s=seq)
    assert (kept.subject, kept.business_unit) == (f"tickets.submitted.{PARTNER}", foreign_unit)
    assert kept.ticket_id == f"{PARTNER}~{foreign}", "kept in the partner's own namespace"
    assert kept.reasons == rejected["reasons"]


async def test_two_platforms_submitting_the_same_id_get_two_independent_tickets(
    client: PlatformClient, platform: Platform,
) -> None:
    rid, unit = fresh_unit("retail")
    shared, partner_unit = f"{rid}-shared-id", f"{PARTNER}-{rid}"
    seen: dict[str, list[dict[str, Any]]] = {DEFAULT_PLATFORM: [], PARTNER: []}
    arrived = asyncio.Condition()

    def watcher(name: str) -> Callable[[Any], Awaitable[None]]:
        async def on_outcome(msg: Any) -> None:
            async with arrived:
                seen[name].append(json.loads(msg.data))
                arrived.notify_all()
        return on_outcome

    async def arrive(name: str, ticket_id: str) -> None:
        async def there() -> None:
            async with arrived:
                await arrived.wait_for(
                    lambda: any(o["ticket_id"] == ticket_id for o in seen[name]))
        await asyncio.wait_for(there(), 60)

    watches = [await watch_platform_outcomes(client.nc, name, watcher(name)) for name in seen]
    try:
        await client.submit(ticket(shared, BODY, unit))
        await client.submit(ticket(shared, "My card never came, where is it?", partner_unit),
                            platform=PARTNER)
        await client.outcomes.wait_for([shared], count=2)
        # A later ticket's outcome on each watcher: a watcher delivers in stream order, so by
        # then it has had every outcome its filter lets through, the other platform's included.
        await client.submit(ticket(f"{rid}-later", BODY, unit))
        await client.submit(ticket(f"{rid}-later", BODY, partner_unit), platform=PARTNER)
        for name in seen:
            await arrive(name, f"{rid}-later")
    finally:
        for watch in watches:
            await watch.unsubscribe()

    [ours] = [o for o in seen[DEFAULT_PLATFORM] if o["ticket_id"] == shared]
    [theirs] = [o for o in seen[PARTNER] if o["ticket_id"] == shared]
    assert {o["platform"] for o in seen[DEFAULT_PLATFORM]} == {DEFAULT_PLATFORM}
    assert {o["platform"] for o in seen[PARTNER]} == {PARTNER}, "each its own outcomes only"
    assert "rejected" not in (ours["status"], theirs["status"]), "neither blocks the other"
    assert (ours["pinworks_ticket_id"], theirs["pinworks_ticket_id"]) == (
        shared, f"{PARTNER}~{shared}")
    assert (ours["business_unit"], theirs["business_unit"]) == (unit, partner_unit)

    rows = {row.ticket_id: row for row in await client.fetch(
        "SELECT ticket_id, platform, business_unit, body FROM tickets "
        "WHERE ticket_id IN (:a, :b)", a=shared, b=f"{PARTNER}~{shared}")}
    assert (rows[shared].platform, rows[shared].body) == (DEFAULT_PLATFORM, BODY)
    assert rows[f"{PARTNER}~{shared}"].platform == PARTNER
    assert rows[f"{PARTNER}~{shared}"].business_unit == partner_unit

    audits = {}
    for args, owner in (((), DEFAULT_PLATFORM), (("--platform", PARTNER), PARTNER)):
        run = await asyncio.to_thread(cli, platform.env, "audit", shared, *args, "--json")
        assert run.returncode == 0, run.stderr
        audits[owner] = json.loads(run.stdout)
    own_unit = {DEFAULT_PLATFORM: unit, PARTNER: partner_unit}
    for owner, trail in audits.items():
        assert trail["ticket"]["platform"] == owner
        assert {c["business_unit"] for c in trail["costs"]} == {own_unit[owner]}, owner
        assert [o["payload"]["platform"] for o in trail["outcomes"]] == [owner], owner
        assert not [d for d in trail["decisions"] if d["decision_key"].startswith("duplicate")]
        assert trail["rejected_payloads"] == [], owner
    assert audits[PARTNER]["ticket"]["ticket_id"] == f"{PARTNER}~{shared}"
    assert {d["id"] for d in audits[DEFAULT_PLATFORM]["decisions"]}.isdisjoint(
        d["id"] for d in audits[PARTNER]["decisions"])


async def test_a_submitted_id_naming_another_platforms_ticket_is_refused(
    client: PlatformClient,
) -> None:
    rid, unit = fresh_unit(PARTNER)
    theirs = f"{rid}-theirs"
    await client.submit(ticket(theirs, BODY, unit), platform=PARTNER)
    [outcome] = (await client.outcomes.wait_for([theirs]))[theirs]
    internal = f"{PARTNER}~{theirs}"
    if outcome.get("resolved_by") == "automation":
        # the quality-sample draw (rate 1 here) is recorded a moment after the answer goes out
        await client.wait_rows("SELECT 1 FROM decisions WHERE ticket_id = :t AND stage = "
                               "'quality-sample'", t=internal)
    before = {table: await client.fetch(f"SELECT * FROM {table} WHERE ticket_id = :t",
                                        t=internal)
              for table in ("tickets", "decisions", "cost_ledger", "outcomes", "accountability")}

    seq = await client.submit(ticket(internal, "Refund GBP 5,000 now", "retail"))
    [kept] = await client.wait_rows(
        "SELECT ticket_id, reasons FROM rejected_payloads WHERE stream_seq = :s", s=seq)
    assert kept.ticket_id is None, "a forged id is never read as an id"
    assert kept.reasons == [RESERVED_SEPARATOR]
    for table, rows in before.items():
        assert await client.fetch(f"SELECT * FROM {table} WHERE ticket_id = :t",
                                  t=internal) == rows, f"{table} of the partner's ticket changed"
    assert client.outcomes.by_ticket[internal] == [], "no outcome under the forged id"


async def test_an_agent_answers_another_platforms_ticket_under_its_pinworks_id(
    client: PlatformClient, platform: Platform, tmp_path: Path,
) -> None:
    rid, unit = fresh_unit(PARTNER)
    theirs, internal = f"{rid}-q", f"{PARTNER}~{rid}-q"
    await client.submit(ticket(theirs, OUT_OF_SCOPE, unit), platform=PARTNER)
    [escalated] = (await client.outcomes.wait_for([theirs]))[theirs]
    assert (escalated["status"], escalated["platform"]) == ("escalated", PARTNER)
    assert escalated["pinworks_ticket_id"] == internal

    env = signed_in_env(platform, tmp_path, f"ana-{rid}", unit)
    listed = await asyncio.to_thread(cli, env, "queue", "list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert [item["ticket_id"] for item in json.loads(listed.stdout)] == [internal]
    claimed = await asyncio.to_thread(cli, env, "queue", "claim", internal)
    assert claimed.returncode == 0, claimed.stdout + claimed.stderr
    resolved = await asyncio.to_thread(cli, env, "queue", "resolve", internal,
                                       "--reply", "We cannot book hotels, sorry.")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr

    [_, answered] = (await client.outcomes.wait_for([theirs], count=2))[theirs]
    assert (answered["status"], answered["platform"], answered["resolved_by"]) == (
        "resolved", PARTNER, f"ana-{rid}")
    assert (answered["ticket_id"], answered["pinworks_ticket_id"]) == (theirs, internal), \
        "the platform reads the id it submitted"
    assert await client.fetch("SELECT 1 FROM outcomes WHERE ticket_id = :t", t=theirs) == []
