"""The stage's handler runner: long calls keep their messages in progress so JetStream does not
redeliver them mid-call; the heartbeat stops when the calls end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from pinworks_contracts.messages import (
    Classification,
    Draft,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_specialists.handlers import Declined
from pinworks_specialists.stage import SpecialistStage


class SlowHandler:
    name = "slow"
    version = "1"

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        await asyncio.sleep(0.45)
        return Declined("thought about it", cost_usd=Decimal("0.01"))

    async def close(self) -> None:
        return None


class Message:
    def __init__(self) -> None:
        self.in_progress_calls = 0

    async def in_progress(self) -> None:
        self.in_progress_calls += 1


class Item:
    def __init__(self, n: int) -> None:
        self.delivery = type("D", (), {"message": Message()})()
        self.value = TicketEnvelope(
            ticket=TicketSubmission(ticket_id=f"T-{n}", business_unit="retail", body="hi"),
            trace_id="0" * 32, received_at=datetime.now(UTC),
            classification=Classification(intent="card_arrival", confidence=0.9, alternatives=[],
                                          out_of_scope=False, model_version="t"),
            route=RouteDecision(handler="slow", rule="r", reason="r", policy_version="p"),
        )


def test_long_calls_are_kept_in_progress_until_they_end() -> None:
    stage = SpecialistStage(SlowHandler(), concurrency=4, heartbeat_seconds=0.1)
    items = [Item(n) for n in range(3)]

    async def go() -> list[tuple[Draft | Declined, float]]:
        results = await stage._run_all(items)  # type: ignore[arg-type]
        counts = [item.delivery.message.in_progress_calls for item in items]
        await asyncio.sleep(0.3)
        assert [item.delivery.message.in_progress_calls for item in items] == counts, (
            "the heartbeat outlived the calls")
        return results

    results = asyncio.run(go())
    assert all(isinstance(r, Declined) and r.cost_usd == Decimal("0.01") for r, _ in results)
    assert all(latency >= 400 for _, latency in results)
    assert all(item.delivery.message.in_progress_calls >= 3 for item in items)
