"""``pinworks bench``: end-to-end throughput and latency through the running platform.

It behaves like a support platform: publishes tickets on its ``tickets.submitted.<platform>`` and listens on
``tickets.outcome.>``. At most ``concurrency`` tickets are in flight (published, no outcome yet),
and the whole run has a deadline, so it always ends by itself.

With a database URL it also reads the audit of the run's model hops (every `llm_*` specialist
decision): their latency, the tokens the server reported and the generation rate, and how many of
the tickets a model tried it answered with a verified draft.

The bench never touches real work: its tickets are marked synthetic (``metadata.synthetic``) and
belong to business units of their own (``bench-<run>-retail``, ...; the ``bench-`` prefix is
reserved), which no agent serves, no real budget pays for and cost reports leave out; once the
run is over `cleanup_bench` takes its tickets out of the escalation queue.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pinworks_cli.bench_figures import (
    BenchResult,
    CpuReading,
    ModelHops,
    cpu_per_ticket,
    paced_offsets,
    read_model_hops,
)
from pinworks_cli.bench_hops import hop_times, read_stage_times
from pinworks_cli.bench_texts import text_of
from pinworks_common.synthetic import BENCH_UNIT_PREFIX
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import pinworks_ticket_id
from pinworks_contracts.subjects import submission_message_id, submitting_platform

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext


CHANNELS = ("email", "chat", "web")


def make_ticket(run_id: str, n: int, business_units: Sequence[str]) -> dict[str, object]:
    """The ``n``-th ticket of a run; texts and channels cycle so every run has the same mix."""
    subject, body = text_of(n)
    return {
        "ticket_id": f"bench-{run_id}-{n}",
        "business_unit": business_units[n % len(business_units)],
        "body": body,
        "subject": subject or None,
        "channel": CHANNELS[(n // 3) % len(CHANNELS)],
        "metadata": {"source": "bench", "synthetic": True, "run_id": run_id,
                     "customer_name": f"Bench Customer {n}"},
    }


def bench_units(run_id: str, names: Sequence[str]) -> list[str]:
    """The run's own business units: `bench-<run>-retail`, ... (never a real unit)."""
    return [f"{BENCH_UNIT_PREFIX}{run_id}-{name}" for name in names]


async def cleanup_bench(conn: Any, run_id: str) -> dict[str, int]:
    """Take the run out of real work once it is over: its escalations leave the queue, and any
    labelled example or budget row it caused is deleted. The audit trail and the cost ledger are
    append-only and keep their rows; those carry the run's `bench-` business units, which cost
    reports leave out. Returns rows deleted per table."""
    from sqlalchemy import delete

    from pinworks_common.db.tables import escalations, labelled_examples, router_budgets

    ticket_prefix = f"bench-{run_id}-%"
    unit_prefix = f"{BENCH_UNIT_PREFIX}{run_id}-%"
    deleted = {}
    for table in (escalations, labelled_examples):
        result = await conn.execute(delete(table).where(table.c.ticket_id.like(ticket_prefix)))
        deleted[table.name] = result.rowcount
    result = await conn.execute(delete(router_budgets).where(
        router_budgets.c.business_unit.like(unit_prefix)))
    deleted[router_budgets.name] = result.rowcount
    return deleted


@dataclass
class _Run:
    """One run's tickets in flight: when each was sent, when its first outcome came back."""

    run_id: str
    business_units: Sequence[str]
    on_outcome: Callable[[int], None] | None
    subject: str
    """The submission subject of the platform the bench submits as."""
    deadline: float = 0.0
    wall_offset: float = field(default_factory=lambda: time.time() - time.perf_counter())
    """What turns a `perf_counter` reading into wall-clock seconds (the audit's clock)."""
    sent_at: dict[str, float] = field(default_factory=dict)
    done_at: dict[str, float] = field(default_factory=dict)
    waiters: dict[str, asyncio.Event] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    handlers: Counter[str] = field(default_factory=Counter)
    answered_by: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    publish_errors: int = 0

    @property
    def prefix(self) -> str:
        return f"bench-{self.run_id}-"

    async def record_outcome(self, msg: Msg) -> None:
        """The first outcome of one of this run's tickets (later ones count as duplicates)."""
        arrived = time.perf_counter()
        try:
            payload = json.loads(msg.data)
            ticket_id = str(payload.get("ticket_id", ""))
        except (ValueError, AttributeError):
            return
        if not ticket_id.startswith(self.prefix):
            return
        if ticket_id in self.done_at:
            self.duplicates += 1
            return
        self.done_at[ticket_id] = arrived
        status = str(payload.get("status") or msg.subject.split(".")[2])  # .<status>.<platform>
        self.statuses[status] += 1
        who = self.answered_by[ticket_id] = (
            str(payload.get("handler") or "?") if status == "resolved"
            else "human" if status == "escalated" else status)
        self.handlers[who] += 1
        if self.on_outcome is not None:
            self.on_outcome(len(self.done_at))
        if (event := self.waiters.get(ticket_id)) is not None:
            event.set()

    async def publish_one(self, js: JetStreamContext, n: int) -> bool:
        """Publish the `n`-th ticket and wait for its outcome; False once the deadline passed."""
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            return False
        ticket = make_ticket(self.run_id, n, self.business_units)
        ticket_id = str(ticket["ticket_id"])
        event = self.waiters[ticket_id] = asyncio.Event()
        self.sent_at[ticket_id] = time.perf_counter()
        try:
            await js.publish(
                self.subject,
                json.dumps(ticket).encode(),
                headers={"Nats-Msg-Id": submission_message_id(pinworks_ticket_id(
                    submitting_platform(self.subject) or DEFAULT_PLATFORM, ticket_id))},
                timeout=min(5.0, remaining),
            )
        except Exception:  # a failed publish is a data point, not a crash
            self.publish_errors += 1
            del self.sent_at[ticket_id]
            return True
        try:
            await asyncio.wait_for(event.wait(), self.deadline - time.perf_counter())
        except TimeoutError:
            return False
        return True

    async def publish_from(self, js: JetStreamContext, queue: asyncio.Queue[int]) -> None:
        """One slot of the concurrency: publish a ticket, wait for its outcome, take the next."""
        while self.deadline > time.perf_counter():
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if not await self.publish_one(js, n):
                return

    async def publish_paced(self, js: JetStreamContext, numbers: range, rate: float) -> None:
        """Ticket `n` leaves at `n / rate` seconds whatever came back, as a steady platform
        sends: latency without a queue of the bench's own making."""
        started = time.perf_counter()
        sending: list[asyncio.Task[bool]] = []
        for n, offset in zip(numbers, paced_offsets(len(numbers), rate), strict=True):
            if (delay := started + offset - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= self.deadline:
                break
            sending.append(asyncio.create_task(self.publish_one(js, n)))
        await asyncio.gather(*sending)

    def result(self, requested: int, timed_out: bool, model: ModelHops | None) -> BenchResult:
        sent_at, done_at = self.sent_at, self.done_at
        published = sorted(sent_at, key=sent_at.__getitem__)
        received = [tid for tid in published if tid in done_at]
        return BenchResult(
            run_id=self.run_id,
            requested=requested,
            published=len(published),
            publish_errors=self.publish_errors,
            first_publish=sent_at[published[0]] if published else None,
            last_outcome=max((done_at[t] for t in received), default=None),
            latencies=[done_at[t] - sent_at[t] for t in received],
            statuses=dict(self.statuses),
            missing=[t for t in published if t not in done_at],
            duplicates=self.duplicates,
            timed_out=timed_out,
            handlers=dict(self.handlers),
            answered_by=dict(self.answered_by),
            model=model,
        )


async def run_bench(
    nats_url: str,
    count: int,
    concurrency: int,
    business_units: Sequence[str],
    *,
    time_limit: float = 120.0,
    run_id: str | None = None,
    database_url: str | None = None,
    on_outcome: Callable[[int], None] | None = None,
    rate: float | None = None,
    first: int = 0,
    read_cpu: Callable[[], CpuReading] | None = None,
    nats_environ: Mapping[str, str] | None = None,
    idle_seconds: float = 0.0,
    subject: str | None = None,
    hops: bool = False,
) -> BenchResult:
    """Publish ``count`` tickets on ``subject`` (the submission subject of the platform the
    command acts as, when None), at most ``concurrency`` in flight (or, given ``rate``, paced at
    that many per second), until done or time is up. Tickets are numbered from ``first``, so
    two runs under one ``run_id`` (full load, then paced) send distinct tickets. With
    ``read_cpu``, the result has each process's CPU-ms per answered ticket, read just before the
    first publish and just after the last outcome, and (``idle_seconds``) their CPU-ms per
    second with nothing in flight just before. With ``hops`` and ``database_url``, it has
    each ticket's time hop by hop, from the audit (`bench_hops`)."""
    if count < 1 or concurrency < 1:
        raise ValueError("count and concurrency must be at least 1")
    if not business_units:
        raise ValueError("at least one business unit is needed")
    from pinworks_common.commands.platform import connect_nats, submission_subject_of_client
    from pinworks_common.nats_client import watch_platform_outcomes

    run = _Run(run_id or uuid.uuid4().hex[:8], business_units, on_outcome,
               subject or submission_subject_of_client())
    platform = submitting_platform(run.subject)
    if platform is None:
        raise ValueError(f"{run.subject} is not a support platform's submission subject")
    nc = await connect_nats(nats_url, nats_environ)
    timed_out = False
    cpu: dict[str, float | None] | None = None
    try:
        js = nc.jetstream()
        # The outcomes stream holds each outcome once (a re-publish after a redelivery is
        # dropped there); a plain core subscription would also see the dropped copy. A
        # watcher is what a support platform's identity may create (`source .run/env`).
        await watch_platform_outcomes(nc, platform, run.record_outcome)
        await nc.flush()
        before, idle = await _idle_reading(read_cpu, idle_seconds)
        run.deadline = time.perf_counter() + time_limit
        await _send(run, js, range(first, first + count), concurrency, rate)
        if before is not None and read_cpu is not None:
            cpu = cpu_per_ticket(before, read_cpu(), len(run.done_at))
        timed_out = time.perf_counter() >= run.deadline and len(run.done_at) < count
    finally:
        await nc.drain()
    model = await read_model_hops(database_url, run.prefix) if database_url else None
    result = run.result(count, timed_out, model)
    result.cpu, result.idle_cpu = cpu, idle
    if database_url and hops:
        result.hops = await _read_hops(run, database_url, platform)
    return result


async def _read_hops(run: _Run, database_url: str, platform: str) -> dict[str, list[float]]:
    """The run's hops (`bench_hops`), its ticket ids as pinworks stores them."""
    ids = {pinworks_ticket_id(platform, ticket): ticket for ticket in run.done_at}
    stage_times = await read_stage_times(database_url, ids)
    wall = {ticket: at + run.wall_offset for ticket, at in run.sent_at.items()}
    done = {ticket: at + run.wall_offset for ticket, at in run.done_at.items()}
    return hop_times(stage_times, wall, done)


async def _idle_reading(read_cpu: Callable[[], CpuReading] | None, seconds: float
                        ) -> tuple[CpuReading | None, dict[str, float | None] | None]:
    """The CPU reading the run starts from, and CPU-ms per second over `seconds` before it."""
    if read_cpu is None:
        return None, None
    first = read_cpu()
    if seconds <= 0:
        return first, None
    await asyncio.sleep(seconds)
    second = read_cpu()
    return second, cpu_per_ticket(first, second, seconds)


async def _send(run: _Run, js: JetStreamContext, numbers: range, concurrency: int,
                rate: float | None) -> None:
    if rate is not None:
        await run.publish_paced(js, numbers, rate)
        return
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    await asyncio.gather(*(run.publish_from(js, queue)
                           for _ in range(min(concurrency, len(numbers)))))
