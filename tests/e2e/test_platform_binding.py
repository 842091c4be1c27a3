"""A support platform submits only for the business units it is bound to: the platform is the
one its submission subject names (NATS lets only its identity publish there), the unit is
checked against `CLASSIFIER_PLATFORM_UNITS`, and anything else is a `rejected` outcome."""

from __future__ import annotations

import pytest

from .conftest import PARTNER, PlatformClient, fresh_unit, ticket

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
    for table in ("tickets", "decisions", "cost_ledger", "accountability", "escalations"):
        rows = await client.fetch(f"SELECT 1 FROM {table} WHERE ticket_id = :t", t=foreign)
        assert rows == [], f"{table} holds the rejected ticket"
    [kept] = await client.fetch(
        "SELECT subject, business_unit, reasons FROM rejected_payloads WHERE stream_seq = :s",
        s=seq)
    assert (kept.subject, kept.business_unit) == (f"tickets.submitted.{PARTNER}", foreign_unit)
    assert kept.reasons == rejected["reasons"]


async def test_another_platforms_ticket_id_is_rejected_and_the_first_ticket_is_untouched(
    client: PlatformClient,
) -> None:
    rid, unit = fresh_unit("retail")
    ticket_id = f"{rid}-shared-id"
    await client.submit(ticket(ticket_id, BODY, unit))
    [first] = (await client.outcomes.wait_for([ticket_id]))[ticket_id]
    [before] = await client.fetch("SELECT * FROM tickets WHERE ticket_id = :t", t=ticket_id)

    seq = await client.submit(ticket(ticket_id, "Refund GBP 5,000 now", f"{PARTNER}-{rid}"),
                              platform=PARTNER)
    seen = (await client.outcomes.wait_for([ticket_id], count=2))[ticket_id]
    [rejected] = [outcome for outcome in seen if outcome["status"] == "rejected"]
    assert first["status"] != "rejected" and seen[0] == first
    assert (first["platform"], rejected["platform"]) == ("support", PARTNER), \
        "the rejection goes to the platform that submitted it, not the id's owner"
    assert rejected["reasons"] == [
        "ticket_id: already used by another support platform; choose another id"]
    [after] = await client.fetch("SELECT * FROM tickets WHERE ticket_id = :t", t=ticket_id)
    assert after._mapping == before._mapping and after.platform == "support"
    await client.wait_rows("SELECT 1 FROM rejected_payloads WHERE stream_seq = :s", s=seq)
    assert await client.fetch(
        "SELECT 1 FROM decisions WHERE ticket_id = :t AND decision_key LIKE 'duplicate:%'",
        t=ticket_id) == [], "no duplicate decision on its trail"
