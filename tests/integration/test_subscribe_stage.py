"""The batch subscriber on real NATS: FastStream hands over the bytes untouched, so payloads its
own JSON decoder chokes on (1,000 nested levels, a 5,001-digit number) reach the stage runner,
are dead-lettered as undecodable, and the normal messages in the same batch go through."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from pinworks_common.db.engine import create_engine
from pinworks_common.ledger import Entries, Ledger
from pinworks_common.service import create_broker, ensure_streams, make_publisher, subscribe_stage
from pinworks_common.settings import CommonSettings
from pinworks_common.stage import Delivery, PoisonMessage, StageRunner, Work
from pinworks_contracts.jsonlimits import INTERNAL_LIMITS, JsonLimitError, check_limits
from pinworks_contracts.subjects import WORK_STREAM
from tests.conftest import Database

pytestmark = pytest.mark.integration


class Recording:
    stage = "hostile-test"

    def __init__(self) -> None:
        self.applied: list[bytes] = []
        self.done = asyncio.Event()

    def decode(self, delivery: Delivery) -> bytes:
        try:
            check_limits(delivery.data, INTERNAL_LIMITS)
        except JsonLimitError as error:
            raise PoisonMessage(str(error)) from None
        return delivery.data

    async def apply(self, ledger: Ledger, work: Sequence[Work[bytes]]) -> Entries:
        self.applied.extend(item.value for item in work)
        if len(self.applied) >= 2:
            self.done.set()
        return Entries()


async def test_a_batch_with_unparseable_json_is_not_jammed(nats_url: str,
                                                           database: Database) -> None:
    rid = uuid.uuid4().hex[:8]
    service_url = database.service_url("verifier")
    subject = f"pinworks.work.hostile-{rid}"
    settings = CommonSettings(NATS_URL=nats_url, DATABASE_URL=service_url,
                              PINWORKS_BATCH_SIZE=16, PINWORKS_ACK_WAIT_SECONDS=30)
    broker = create_broker(settings, "hostile-test")
    engine = create_engine(service_url, pool_size=2)
    logic = Recording()
    publish = make_publisher(broker)
    runner = StageRunner(logic, engine, publish, max_deliveries=3)
    subscribe_stage(broker, runner, subject=subject, stream=WORK_STREAM, durable=f"h-{rid}",
                    settings=settings, description="test")
    await broker.connect()
    await ensure_streams(broker)
    js = broker.config.connection_state.stream
    for payload in (b"[" * 1000 + b"]" * 1000, b'{"ok": 1}', b"9" * 5001, b'{"ok": 2}'):
        await js.publish(subject, payload, stream=WORK_STREAM)
    await broker.start()
    try:
        await asyncio.wait_for(logic.done.wait(), 30)
        assert sorted(logic.applied) == [b'{"ok": 1}', b'{"ok": 2}']
        for _ in range(100):
            info = await js.consumer_info(WORK_STREAM, f"h-{rid}")
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.1)
        assert info.num_ack_pending == 0 and info.num_pending == 0, info
    finally:
        await broker.stop()
        await engine.dispose()
