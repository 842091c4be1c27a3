"""``pinworks chaos``: the platform's fault tier, on its own embedded NATS and Postgres.

Under steady load of normal tickets it SIGKILLs each service once (the supervisor of
``pinworks run`` restarts them), restarts NATS, stops Postgres for a while, and interleaves a
generated corpus of hostile payloads (`pinworks_cli.hostile`). Then it waits for the platform to
drain and checks, from the outcomes stream and Postgres: nothing lost, nothing duplicated, no
ticket charged twice, exactly one outcome per accepted ticket, every hostile payload recorded in
`rejected_payloads` and every readable id rejected with a reason, no dead letters, and a drain
time bound. ``--soak`` then measures capacity and runs steady load at half of it, reporting each
service's memory growth.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from pinworks_cli.bench import make_ticket
from pinworks_cli.chaos_checks import ChaosReport, Sent, connect, verify, wait_drained
from pinworks_cli.chaos_platform import Platform
from pinworks_cli.hostile import corpus
from pinworks_common.db.engine import create_engine
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.subjects import TICKETS_STREAM, submission_subject
from pinworks_devtools import EmbeddedNats

UNITS = ("retail", "business", "wealth")


@dataclass(frozen=True)
class ChaosPlan:
    """What to send and which faults to inject, as offsets (s) from the start of the load."""

    rate: float
    duration: float
    hostile: int
    kill_at: dict[str, float]
    nats_restart_at: float
    postgres_stop_at: float
    postgres_down: float
    drain_bound: float
    resubmit_every: int = 25
    """Every n-th normal ticket is submitted again under a new message id (a client retry)."""


FULL = ChaosPlan(
    rate=20, duration=240, hostile=10_000,
    kill_at={"classifier": 20, "router": 35, "specialists": 50, "verifier": 65,
             "escalation": 80},
    nats_restart_at=100, postgres_stop_at=140, postgres_down=30, drain_bound=180,
)
SHORT = ChaosPlan(
    rate=6, duration=50, hostile=1_200,
    kill_at={"classifier": 4, "router": 8, "specialists": 12, "verifier": 16, "escalation": 20},
    nats_restart_at=25, postgres_stop_at=33, postgres_down=6, drain_bound=150,
)


SUBMITTED = submission_subject(DEFAULT_PLATFORM)


def _say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def _publish(js: JetStreamContext, payload: bytes, msg_id: str, sent: Sent) -> int:
    """Publish as the generated support platform until JetStream acknowledges (a retry keeps
    the id, so it is stored once)."""
    while True:
        try:
            ack = await js.publish(SUBMITTED, payload, stream=TICKETS_STREAM, timeout=3,
                                   headers={"Nats-Msg-Id": msg_id})
            sent.last_ack = time.monotonic()
            return int(ack.seq)
        except Exception:  # noqa: BLE001 - NATS is being restarted: try again
            sent.publish_retries += 1
            await asyncio.sleep(0.5)


async def _paced(count: int, duration: float,
                 send: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for n in range(count):
        delay = started + n * duration / max(count, 1) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n)))
    await asyncio.gather(*tasks)


async def _send_load(server: EmbeddedNats, run_id: str, plan: ChaosPlan, sent: Sent) -> None:
    nc = await connect(server)
    js = nc.jetstream()
    hostile = list(corpus(run_id, plan.hostile))

    async def send_normal(n: int) -> None:
        ticket = make_ticket(run_id, n, UNITS)
        ticket_id = str(ticket["ticket_id"])
        payload = json.dumps(ticket).encode()
        sent.normal[ticket_id] = await _publish(js, payload, f"{ticket_id}:submitted", sent)
        if plan.resubmit_every and n % plan.resubmit_every == 0:
            await _publish(js, payload, f"{ticket_id}:client-retry", sent)
            sent.resubmitted += 1

    async def send_hostile(n: int) -> None:
        entry = hostile[n]
        seq = await _publish(js, entry.payload, f"hostile-{run_id}-{n}:submitted", sent)
        sent.hostile.append((entry, seq))

    try:
        await asyncio.gather(
            _paced(int(plan.rate * plan.duration), plan.duration, send_normal),
            _paced(len(hostile), plan.duration, send_hostile),
        )
    finally:
        await nc.close()


async def _inject_faults(platform: Platform, plan: ChaosPlan, log: list[str]) -> None:
    started = time.monotonic()

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))

    events: list[tuple[float, str, Callable[[], None]]] = [
        (offset, f"SIGKILL {name}", lambda name=name: platform.kill(name))  # type: ignore[misc]
        for name, offset in plan.kill_at.items()
    ]
    events.append((plan.nats_restart_at, "restart NATS", platform.restart_nats))
    events.append((plan.postgres_stop_at, "stop Postgres", platform.stop_postgres))
    events.append((plan.postgres_stop_at + plan.postgres_down, "start Postgres",
                   platform.start_postgres))
    for offset, what, action in sorted(events, key=lambda event: event[0]):
        await at(offset)
        began = time.monotonic()
        await asyncio.to_thread(action)
        note = f"t+{began - started:5.1f}s {what} ({time.monotonic() - began:.1f}s)"
        log.append(note)
        _say(note)


async def run_faults(platform: Platform, plan: ChaosPlan) -> ChaosReport:
    run_id = uuid.uuid4().hex[:8]
    sent = Sent()
    fault_log: list[str] = []
    _say(f"run {run_id}: {plan.rate}/s normal for {plan.duration:.0f}s, {plan.hostile} hostile")
    started = time.monotonic()
    await asyncio.gather(_send_load(platform.nats, run_id, plan, sent),
                         _inject_faults(platform, plan, fault_log))
    _say(f"load done in {time.monotonic() - started:.0f}s; waiting for the drain")
    owed = list(sent.normal) + [e.ticket_id for e, _ in sent.hostile if e.ticket_id]
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        _, missing = await wait_drained(engine, owed, plan.drain_bound + 120)
        drain_seconds = time.monotonic() - sent.last_ack
    finally:
        await engine.dispose()
    report = await verify(platform, run_id, sent, drain_seconds, missing, plan.drain_bound,
                          plan.kill_at)
    report.figures["faults"] = fault_log
    return report


async def measure_capacity(platform: Platform, count: int = 1500) -> float:
    """Tickets/s the platform sustains: a burst of `count`, first publish to last outcome."""
    run_id = uuid.uuid4().hex[:8]
    sent = Sent()
    nc = await connect(platform.nats)
    js = nc.jetstream()
    started = time.monotonic()
    try:
        semaphore = asyncio.Semaphore(200)

        async def send(n: int) -> None:
            ticket = make_ticket(run_id, n, UNITS)
            async with semaphore:
                sent.normal[str(ticket["ticket_id"])] = await _publish(
                    js, json.dumps(ticket).encode(), f"{ticket['ticket_id']}:submitted", sent)

        await asyncio.gather(*(send(n) for n in range(count)))
    finally:
        await nc.close()
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        await wait_drained(engine, list(sent.normal), 600)
    finally:
        await engine.dispose()
    return count / (time.monotonic() - started)


async def run_soak(platform: Platform, seconds: float, rate: float) -> ChaosReport:
    """Steady load at `rate` for `seconds`: every ticket answered once, memory per service."""
    plan = ChaosPlan(rate=rate, duration=seconds, hostile=0, kill_at={}, nats_restart_at=0,
                     postgres_stop_at=0, postgres_down=0, drain_bound=120, resubmit_every=0)
    run_id = uuid.uuid4().hex[:8]
    sent = Sent()
    samples: list[tuple[float, dict[str, float]]] = []

    async def sample() -> None:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, platform.rss_mb()))
            await asyncio.sleep(30)
        samples.append((time.monotonic() - started, platform.rss_mb()))

    _say(f"soak {run_id}: {rate:.1f} tickets/s for {seconds:.0f}s")
    await asyncio.gather(_send_load(platform.nats, run_id, plan, sent), sample())
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        _, missing = await wait_drained(engine, list(sent.normal), 300)
        drain_seconds = time.monotonic() - sent.last_ack
    finally:
        await engine.dispose()
    report = await verify(platform, run_id, sent, drain_seconds, missing, plan.drain_bound,
                          plan.kill_at)
    warm = next((rss for t, rss in samples if t >= min(120.0, seconds / 4)), samples[0][1])
    final = samples[-1][1]
    hours = max((samples[-1][0] - min(120.0, seconds / 4)) / 3600, 1e-9)
    report.figures["soak rate (tickets/s)"] = round(rate, 1)
    report.figures["soak seconds"] = round(seconds)
    for name in final:
        growth = final[name] - warm.get(name, final[name])
        report.figures[f"rss {name} (MB)"] = (
            f"{warm.get(name, 0):.0f} -> {final[name]:.0f} after warm-up "
            f"({growth:+.1f} MB, {growth / hours:+.1f} MB/h)")
    return report


def run_chaos(plan: ChaosPlan, *, soak_seconds: float = 0, workdir: Path | None = None
              ) -> list[ChaosReport]:
    """Start a private platform, run the fault tier (and the soak), and stop everything.

    The platform is always its own (embedded servers it can restart), whatever `NATS_URL` and
    `DATABASE_URL` say: restarting someone else's NATS or Postgres is not a test's business."""
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="pinworks-chaos-")) if workdir is None else workdir
    platform = Platform(base)
    reports: list[ChaosReport] = []
    keep = True
    try:
        _say(f"starting NATS, Postgres and the services under {base}")
        platform.start()
        reports.append(asyncio.run(run_faults(platform, plan)))
        if soak_seconds > 0:
            capacity = asyncio.run(measure_capacity(platform))
            _say(f"measured capacity {capacity:.1f} tickets/s")
            reports.append(asyncio.run(run_soak(platform, soak_seconds, capacity / 2)))
            reports[-1].figures["measured capacity (tickets/s)"] = round(capacity, 1)
        keep = not all(report.passed for report in reports)
    finally:
        platform.close()
        if owned and not keep:
            shutil.rmtree(base, ignore_errors=True)
        elif keep:
            _say(f"logs and data kept under {base}")
    return reports
