"""A stage whose process dies (`os._exit`, as a segfault or an OOM kill would end it) whenever
its batch holds a ticket whose id ends in `POISON`; every other ticket is one decision. Run by
`test_unfinished_deliveries` as `python -m tests.integration.dying_stage SUBJECT DURABLE` with
NATS_URL, DATABASE_URL and the PINWORKS_* settings in its environment; `envelope` is a ticket
for it (`tools/stage/bench_recovery.py` records its backlog with the same stage)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pinworks_common.db.engine import create_engine
from pinworks_common.ledger import Decision, Entries, Ledger
from pinworks_common.service import create_broker, ensure_streams, make_publisher, subscribe_stage
from pinworks_common.settings import CommonSettings
from pinworks_common.stage import Delivery, StageRunner, Work, decode_model, escalate_on_dead_letter
from pinworks_contracts.messages import (
    Classification,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import WORK_STREAM

STAGE = "dying-test"
DIED = 3


class DyingStage:
    stage = STAGE

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        return envelope

    async def apply(self, ledger: Ledger, work: Sequence[Work[TicketEnvelope]]) -> Entries:
        if any(item.value.ticket.ticket_id.endswith("POISON") for item in work):
            os._exit(DIED)
        return Entries(decisions=[
            Decision(item.value.ticket.ticket_id, STAGE, "k", "test", "1", inputs={}, output={},
                     reason="ok", trace_id=item.trace_id) for item in work])


def envelope(ticket_id: str) -> bytes:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail", body="hi"),
        trace_id="a" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=Classification(intent="card_arrival", confidence=0.9, out_of_scope=False,
                                      model_version="m", alternatives=[
                                          IntentScore(intent="card_arrival", score=0.9)]),
    ).model_dump_json().encode()


async def main(subject: str, durable: str) -> None:
    settings = CommonSettings()
    broker = create_broker(settings, STAGE)
    engine = create_engine(settings.database_url, pool_size=2)
    runner = StageRunner(DyingStage(), engine, make_publisher(broker),
                         max_deliveries=settings.max_deliveries,
                         max_unfinished_deliveries=settings.max_unfinished_deliveries,
                         on_dead_letter=escalate_on_dead_letter(STAGE))
    subscribe_stage(broker, runner, subject=subject, stream=WORK_STREAM, durable=durable,
                    settings=settings, description="a stage that dies on poison")
    await broker.connect()
    await ensure_streams(broker)
    await broker.start()
    print("started", flush=True)
    await asyncio.Event().wait()  # until the test ends the process


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
