"""Benchmark what a stage's process spends to publish a batch's hand-offs and have JetStream
acknowledge them (`service.JetStreamPublisher.publish_all`, as the stage runner calls it once
per batch), on a real nats-server of its own (embedded, JetStream on disk, plain TCP).

Each batch is `--batch` publications of an 830-byte envelope-sized payload with a traceparent
and a unique `Nats-Msg-Id` to the work stream. Prints this process's CPU microseconds per
publication (the server's own CPU is not in it), best of `--repeats` runs, and the server's CPU
per publication over all runs. With `--tls` the server is secured as under `make run` and the
bench (TLS, nkeys) and the bench publishes as the classifier, on its subject.

Usage: .venv/bin/python libs/common/benchmarks/bench_publish.py [--batches 200] [--batch 128]
[--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from pinworks_common.ledger import Publication
from pinworks_common.service import create_broker, ensure_streams, make_publisher
from pinworks_common.settings import CommonSettings
from pinworks_contracts.subjects import CLASSIFIED, WORK_STREAM
from pinworks_devtools import EmbeddedNats

PAYLOAD = b'{"ticket": {"body": "' + b"x" * 780 + b'"}}'


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(nats: EmbeddedNats, batches: int, batch: int, repeats: int) -> None:
    os.environ.update(nats.client_env("classifier"))
    settings = CommonSettings(NATS_URL=nats.url,
                              DATABASE_URL="postgresql://unused@127.0.0.1:1/x")
    subject = CLASSIFIED if nats.secured else f"pinworks.work.bench-{uuid.uuid4().hex[:8]}"
    broker = create_broker(settings, "bench-publish")
    await broker.connect()
    try:
        await ensure_streams(broker)
        publish = make_publisher(broker)
        run_id = uuid.uuid4().hex[:8]

        def publications(first: int) -> list[Publication]:
            return [Publication(subject, PAYLOAD, f"{run_id}:{n}",
                                WORK_STREAM, headers={
                                    "traceparent": f"00-{run_id * 4}-{n:016x}-01"})
                    for n in range(first, first + batch)]

        await publish.publish_all(publications(-batch))  # warm-up: the reply subscription
        best, published = float("inf"), 0
        assert nats.pid is not None
        server_started = server_cpu_seconds(nats.pid)
        for _ in range(repeats):
            work = [publications(published + n * batch) for n in range(batches)]
            published += batches * batch
            started = time.process_time()
            for item in work:
                await publish.publish_all(item)
            best = min(best, (time.process_time() - started) * 1e6 / (batches * batch))
        server = (server_cpu_seconds(nats.pid) - server_started) * 1e6 / published
        print(f"{'TLS' if nats.secured else 'TCP'} publish_all, batches of {batch}: "
              f"{best:.1f} CPU-us per publication in this process (best of {repeats} x "
              f"{batches} batches); nats-server {server:.1f} CPU-us per publication")
    finally:
        await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as directory:
        nats = EmbeddedNats(Path(directory), secured=args.tls).start()
        try:
            asyncio.run(run(nats, args.batches, args.batch, args.repeats))
        finally:
            nats.stop()


if __name__ == "__main__":
    main()
