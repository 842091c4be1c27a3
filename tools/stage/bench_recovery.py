"""How long a stage takes to drain the messages a process of it died holding: a backlog of `N`
unacknowledged deliveries (taken by a consumer that then vanished, as a killed process leaves
them) comes back after the ack wait to a freshly started stage (the real `StageRunner` on the
real pull loop; the stage of `tests/integration/dying_stage.py`, one ledger decision per
ticket), and the time from its first redelivered batch to the last acknowledgement is printed,
with the number of batches and this process's CPU over it. A benchmark to run by hand, not a
timed test; alternate it with the commit you compare against (`PYTHONPATH=<that commit's
libs/common/src>` runs its stage runner).

NATS: `NATS_URL`, else an embedded nats-server; Postgres: `DATABASE_URL` (a database of its own
is created there), else an embedded server (both removed afterwards).

    .venv/bin/python tools/stage/bench_recovery.py [--count 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import func, select

from pinworks_common.db.engine import create_engine
from pinworks_common.db.migrate import upgrade
from pinworks_common.db.tables import decisions
from pinworks_common.service import create_broker, ensure_streams, make_publisher, subscribe_stage
from pinworks_common.settings import CommonSettings
from pinworks_common.stage import StageRunner
from pinworks_contracts.subjects import WORK_STREAM
from pinworks_devtools import EmbeddedNats, drop_database, fresh_database, resolve_database

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# The integration test's stage: one decision per ticket (it dies only on a ticket named so).
from tests.integration.dying_stage import STAGE, DyingStage, envelope  # noqa: E402

ACK_WAIT_SECONDS = 2.0


async def one_round(nats_url: str, database_url: str, count: int) -> dict[str, float]:
    rid = uuid.uuid4().hex[:8]
    subject, durable = f"pinworks.work.recovery-{rid}", f"recovery-{rid}"
    settings = CommonSettings(NATS_URL=nats_url, DATABASE_URL=database_url,
                              PINWORKS_ACK_WAIT_SECONDS=ACK_WAIT_SECONDS)
    broker = create_broker(settings, STAGE)
    engine = create_engine(database_url, pool_size=2)
    drained = asyncio.Event()
    first: list[float] = []
    acked = batches = 0
    runner = StageRunner(DyingStage(), engine, make_publisher(broker),
                         max_deliveries=settings.max_deliveries)
    process = runner.process

    async def timed(messages: Sequence[Any]) -> None:
        nonlocal acked, batches
        batches += 1
        if not first:
            first.append(time.perf_counter())
            first.append(time.process_time())
        await process(messages)
        acked += sum(1 for message in messages if message._ackd)
        if acked >= count:
            drained.set()

    runner.process = timed  # type: ignore[method-assign]
    dead = await nats.connect(nats_url)
    try:
        await broker.connect()
        await ensure_streams(broker)
        js = dead.jetstream()
        # the stage's durable consumer as subscribe_stage declares it
        await js.add_consumer(WORK_STREAM, ConsumerConfig(
            durable_name=durable, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS, max_deliver=-1,
            max_ack_pending=max(1000, settings.batch_size * 8)))
        acks = [await js.publish(subject, envelope(f"{rid}-{n}"), stream=WORK_STREAM)
                for n in range(count)]
        assert len(acks) == count
        # the process that died: every message delivered to it, none acknowledged
        held = await js.pull_subscribe_bind(durable, stream=WORK_STREAM)
        taken = 0
        while taken < count:
            taken += len(await held.fetch(min(count - taken, 256), timeout=10))
        await dead.close()
        subscribe_stage(broker, runner, subject=subject, stream=WORK_STREAM, durable=durable,
                        settings=settings, description="recovery benchmark")
        await broker.start()
        await asyncio.wait_for(drained.wait(), 600)
        wall = time.perf_counter() - first[0]
        cpu = time.process_time() - first[1]
        async with engine.connect() as conn:
            stored = (await conn.execute(select(func.count()).select_from(decisions).where(
                decisions.c.stage == STAGE, decisions.c.ticket_id.like(f"{rid}-%")))).scalar()
        assert stored == count, f"{stored} decisions for {count} tickets"
        await js_delete(broker, durable)
        return {"wall": wall, "cpu": cpu, "batches": batches}
    finally:
        if not dead.is_closed:
            await dead.close()
        await broker.stop()
        await engine.dispose()


async def js_delete(broker: Any, durable: str) -> None:
    await broker.config.connection_state.stream.delete_consumer(WORK_STREAM, durable)


async def run(nats_url: str, database_url: str, count: int, rounds: int) -> None:
    results = [await one_round(nats_url, database_url, count) for _ in range(rounds)]
    walls = [r["wall"] for r in results]
    cpus = [r["cpu"] for r in results]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    import pinworks_common

    print(f"pinworks_common from {Path(pinworks_common.__file__).parent}")
    print(f"backlog of {count} redelivered after the process holding them died, "
          f"median of {rounds} rounds (load average {os.getloadavg()[0]:.2f})")
    print(f"  drained in {wall:.2f} s ({count / wall:.0f} messages/s; rounds "
          f"{', '.join(f'{w:.2f}' for w in walls)} s)")
    print(f"  in {statistics.median(r['batches'] for r in results):.0f} batches (median)")
    print(f"  stage process CPU {cpu:.2f} s ({cpu * 1000 / count:.2f} CPU-ms per message)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as workdir:
        server = None
        endpoint = resolve_database(Path(workdir), allow_docker=False)
        url = endpoint.url
        try:
            nats_url = os.environ.get("NATS_URL")
            if nats_url is None:
                server = EmbeddedNats(Path(workdir) / "nats").start()
                nats_url = server.url
            if endpoint.source.startswith("environment"):
                url = asyncio.run(fresh_database(url, "pinworks_bench"))
            upgrade(url)
            asyncio.run(run(nats_url, url, args.count, args.rounds))
        finally:
            if url != endpoint.url:  # its own database on DATABASE_URL's server
                asyncio.run(drop_database(endpoint.url, url))
            if server is not None:
                server.stop()
            endpoint.close()


if __name__ == "__main__":
    main()
