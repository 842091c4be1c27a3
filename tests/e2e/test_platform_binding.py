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
    for table in ("tickets", "decisions", "cost_ledger", "accountability", "escalations"):
        rows = await client.fetch(f"SELECT 1 FROM {table} WHERE ticket_id = :t", t=foreign)
        assert rows == [], f"{table} holds the rejected ticket"
    [kept] = await client.fetch(
        "SELECT subject, business_unit, reasons FROM rejected_payloads WHERE stream_seq = :s",
        s=seq)
    assert (kept.subject, kept.business_unit) == (f"tickets.submitted.{PARTNER}", foreign_unit)
    assert kept.reasons == rejected["reasons"]
