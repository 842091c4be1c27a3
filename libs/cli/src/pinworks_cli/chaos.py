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
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from pinworks_cli.bench import make_ticket
from pinworks_cli.hostile import HostilePayload, corpus
from pinworks_cli.launcher import ALL_SERVICES, _supervise_once, _Supervised
from pinworks_common.db.engine import create_engine
from pinworks_common.devinfra import EmbeddedNats, EmbeddedPostgres, ServiceProcess, free_port
from pinworks_common.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, SUBMITTED, TICKETS_STREAM

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


@dataclass
class Sent:
    """What the load generator got acknowledged by JetStream."""

    normal: dict[str, int] = field(default_factory=dict)
    hostile: list[tuple[HostilePayload, int]] = field(default_factory=list)
    resubmitted: int = 0
    publish_retries: int = 0
    last_ack: float = 0.0


@dataclass
class ChaosReport:
    figures: dict[str, Any]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def format(self) -> str:
        lines = ["pinworks chaos"]
        lines += [f"  {key:<34} {value}" for key, value in self.figures.items()]
        lines.append("  result: " + ("PASS" if self.passed else "FAIL"))
        lines += [f"    - {failure}" for failure in self.failures]
        return "\n".join(lines)


def _say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Platform:
    """Embedded NATS and Postgres that can be restarted, and the supervised services."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nats = EmbeddedNats(workdir / "nats")
        self.postgres = EmbeddedPostgres(workdir / "postgres")
        self.processes: dict[str, ServiceProcess] = {}
        self._supervising = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from pinworks_common.db.migrate import upgrade

        self.nats.start()
        self.postgres.start()
        upgrade(self.postgres.url)
        env = {
            "NATS_URL": self.nats.url,
            "DATABASE_URL": self.postgres.url,
            "ESCALATION_HTTP_PORT": str(free_port()),
            "PINWORKS_ACK_WAIT_SECONDS": "10",
            "PINWORKS_LOG_LEVEL": "INFO",
        }
        for name in ALL_SERVICES:
            self.processes[name] = ServiceProcess(
                name, {**env, "PINWORKS_HEALTH_PORT": str(free_port())}, self.workdir / "logs")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready(120)
        self._supervising.set()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        entries = [_Supervised(process) for process in self.processes.values()]
        while self._supervising.is_set():
            with self._lock:
                _supervise_once(entries, time.monotonic(), time.monotonic)
            time.sleep(0.5)

    def kill(self, name: str) -> None:
        with self._lock:
            self.processes[name].kill(signal.SIGKILL)

    def restart_nats(self) -> None:
        self.nats.stop()
        self.nats.start()

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        self.postgres.start(timeout=120)

    def rss_mb(self) -> dict[str, float]:
        sizes = {}
        for name, process in self.processes.items():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except (OSError, TypeError):
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[name] = int(line.split()[1]) / 1024
        return sizes

    def close(self) -> None:
        self._supervising.clear()
        if self._thread is not None:
            self._thread.join(5)
        for process in self.processes.values():
            process.stop()
        self.postgres.stop()
        self.nats.stop()


async def _ignore(error: Exception) -> None:
    """The NATS restart is ours: the client's reconnect errors are expected."""


async def _connect(url: str) -> nats.NATS:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                              connect_timeout=5, error_cb=_ignore)


async def _publish(js: JetStreamContext, payload: bytes, msg_id: str, sent: Sent) -> int:
    """Publish until JetStream acknowledges (a retry keeps the id, so it is stored once)."""
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


async def _send_load(url: str, run_id: str, plan: ChaosPlan, sent: Sent) -> None:
    nc = await _connect(url)
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


async def _owed_without_outcome(engine: Any, ids: list[str]) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT DISTINCT ticket_id FROM outcomes WHERE ticket_id = ANY(:ids)"), {"ids": ids})
        done = set(rows.scalars())
    return [ticket_id for ticket_id in ids if ticket_id not in done]


async def _wait_drained(engine: Any, ids: list[str], limit: float) -> tuple[float, list[str]]:
    """Seconds until every id has an outcome in Postgres (or the ids still missing at `limit`)."""
    started = time.monotonic()
    missing = ids
    while time.monotonic() - started < limit:
        try:
            missing = await _owed_without_outcome(engine, missing)
        except Exception:  # noqa: BLE001 - the database may still be coming back
            await asyncio.sleep(1)
            continue
        if not missing:
            break
        await asyncio.sleep(1)
    return time.monotonic() - started, missing


async def _stream_outcomes(url: str, prefixes: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Every outcome the outcomes stream holds for this run's tickets."""
    nc = await _connect(url)
    by_ticket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(OUTCOMES_STREAM)).state.messages
        subscription = await js.pull_subscribe(
            OUTCOME_WILDCARD, stream=OUTCOMES_STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
        read = 0
        while read < total:
            try:
                messages = await subscription.fetch(1000, timeout=5)
            except nats.errors.TimeoutError:
                break
            for message in messages:
                read += 1
                outcome = json.loads(message.data)
                if str(outcome.get("ticket_id", "")).startswith(prefixes):
                    by_ticket[outcome["ticket_id"]].append(outcome)
    finally:
        await nc.close()
    return by_ticket


async def _verify(platform: Platform, run_id: str, sent: Sent, drain_seconds: float,
                  drain_missing: list[str], plan: ChaosPlan) -> ChaosReport:
    engine = create_engine(platform.postgres.url, pool_size=2)
    failures: list[str] = []
    try:
        prefixes = (f"bench-{run_id}-", f"hostile-{run_id}-")
        streamed = await _stream_outcomes(platform.nats.url, prefixes)
        async with engine.connect() as conn:
            stored_rows = (await conn.execute(text(
                "SELECT ticket_id, status, payload FROM outcomes "
                "WHERE ticket_id LIKE :a OR ticket_id LIKE :b"),
                {"a": f"bench-{run_id}-%", "b": f"hostile-{run_id}-%"})).all()
            charges = (await conn.execute(text(
                "SELECT ticket_id, entry_key, count(*) AS n, sum(amount_usd) AS total "
                "FROM cost_ledger WHERE ticket_id LIKE :a OR ticket_id LIKE :b "
                "GROUP BY ticket_id, entry_key"),
                {"a": f"bench-{run_id}-%", "b": f"hostile-{run_id}-%"})).all()
            rejected_seqs = set((await conn.execute(text(
                "SELECT stream_seq FROM rejected_payloads WHERE stream_seq = ANY(:seqs) "
                "AND jsonb_array_length(reasons) > 0"),
                {"seqs": [seq for _, seq in sent.hostile]})).scalars())
            dead = (await conn.execute(text(
                "SELECT stage, error FROM dead_letters WHERE ticket_id LIKE :a OR "
                "ticket_id LIKE :b"), {"a": f"bench-{run_id}-%", "b": f"hostile-{run_id}-%"})).all()
    finally:
        await engine.dispose()

    stored: dict[str, list[Any]] = defaultdict(list)
    for row in stored_rows:
        stored[row.ticket_id].append(row)
    accepted = list(sent.normal) + [e.ticket_id for e, _ in sent.hostile
                                    if e.expect == "accept" and e.ticket_id]
    owed_rejections = [e for e, _ in sent.hostile if e.expect == "reject" and e.ticket_id]
    owed = accepted + [e.ticket_id for e in owed_rejections if e.ticket_id]

    lost = [t for t in owed if not streamed.get(t) or not stored.get(t)]
    duplicated = [t for t in owed if len(streamed.get(t, [])) > 1 or len(stored.get(t, [])) > 1]
    twice = [row for row in charges if row.n > 1]
    ledger: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in charges:
        ledger[row.ticket_id] += Decimal(str(row.total))
    cost_mismatch = [
        t for t in accepted if stored.get(t)
        and abs(Decimal(str(stored[t][0].payload["cost_usd"])) - ledger[t]) > Decimal("0.000001")
    ]
    wrongly_rejected = [t for t in accepted if any(r.status == "rejected" for r in stored.get(t, []))]
    not_rejected = [
        e for e in owed_rejections if e.ticket_id and (not stored.get(e.ticket_id) or any(
            r.status != "rejected" or not r.payload.get("reasons") for r in stored[e.ticket_id]))
    ]
    no_row = [e.kind for e, seq in sent.hostile if e.expect == "reject" and seq not in rejected_seqs]

    statuses = Counter(rows[0].status for t, rows in stored.items() if rows)
    figures: dict[str, Any] = {
        "normal tickets accepted by JetStream": len(sent.normal),
        "client resubmissions (new msg id)": sent.resubmitted,
        "hostile payloads sent": len(sent.hostile),
        "  of which odd but valid (accept)": sum(e.expect == "accept" for e, _ in sent.hostile),
        "  of which readable id (rejected)": len(owed_rejections),
        "publish retries during faults": sent.publish_retries,
        "outcomes by status": dict(sorted(statuses.items())),
        "lost (no outcome)": len(lost),
        "duplicated outcomes": len(duplicated),
        "double charges": len(twice),
        "outcome cost != ledger": len(cost_mismatch),
        "accepted but rejected": len(wrongly_rejected),
        "readable malformed id not rejected": len(not_rejected),
        "hostile without rejected_payloads row": len(no_row),
        "dead letters": len(dead),
        "drain after last publish (s)": round(drain_seconds, 1),
        "drain bound (s)": plan.drain_bound,
        "service starts": {name: p.starts for name, p in platform.processes.items()},
    }
    checks: list[tuple[Sequence[Any], str]] = [
        (lost, "lost"), (duplicated, "duplicated"), (twice, "charged twice"),
        (cost_mismatch, "outcome cost differs from the ledger"),
        (wrongly_rejected, "accepted tickets rejected"),
        ([e.kind for e in not_rejected], "readable malformed ids without a rejected outcome"),
        (no_row, "hostile payloads without a rejected_payloads row"),
        ([f"{row.stage}: {row.error[:120]}" for row in dead], "dead letters"),
    ]
    for items, what in checks:
        if items:
            failures.append(f"{len(items)} {what}: {list(items[:5])}")
    if drain_missing:
        failures.append(f"{len(drain_missing)} without an outcome at the drain bound")
    if drain_seconds > plan.drain_bound:
        failures.append(f"drain took {drain_seconds:.0f}s > {plan.drain_bound:.0f}s")
    unrestarted = [name for name in plan.kill_at if platform.processes[name].starts < 2]
    if unrestarted:
        failures.append(f"not restarted by the supervisor: {unrestarted}")
    return ChaosReport(figures, failures)


async def run_faults(platform: Platform, plan: ChaosPlan) -> ChaosReport:
    run_id = uuid.uuid4().hex[:8]
    sent = Sent()
    fault_log: list[str] = []
    _say(f"run {run_id}: {plan.rate}/s normal for {plan.duration:.0f}s, {plan.hostile} hostile")
    started = time.monotonic()
    await asyncio.gather(_send_load(platform.nats.url, run_id, plan, sent),
                         _inject_faults(platform, plan, fault_log))
    _say(f"load done in {time.monotonic() - started:.0f}s; waiting for the drain")
    owed = list(sent.normal) + [e.ticket_id for e, _ in sent.hostile if e.ticket_id]
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        _, missing = await _wait_drained(engine, owed, plan.drain_bound + 120)
        drain_seconds = time.monotonic() - sent.last_ack
    finally:
        await engine.dispose()
    report = await _verify(platform, run_id, sent, drain_seconds, missing, plan)
    report.figures["faults"] = fault_log
    return report


async def measure_capacity(platform: Platform, count: int = 1500) -> float:
    """Tickets/s the platform sustains: a burst of `count`, first publish to last outcome."""
    run_id = uuid.uuid4().hex[:8]
    sent = Sent()
    nc = await _connect(platform.nats.url)
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
        await _wait_drained(engine, list(sent.normal), 600)
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
    await asyncio.gather(_send_load(platform.nats.url, run_id, plan, sent), sample())
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        _, missing = await _wait_drained(engine, list(sent.normal), 300)
        drain_seconds = time.monotonic() - sent.last_ack
    finally:
        await engine.dispose()
    report = await _verify(platform, run_id, sent, drain_seconds, missing, plan)
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
