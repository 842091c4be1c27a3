"""``pinworks bench``: end-to-end throughput and latency through the running platform.

It behaves like a support platform: publishes tickets on ``tickets.submitted`` and listens on
``tickets.outcome.>``. At most ``concurrency`` tickets are in flight (published, no outcome yet),
and the whole run has a deadline, so it always ends by itself.

The bench never touches real work: its tickets are marked synthetic (``metadata.synthetic``) and
belong to business units of their own (``bench-<run>-retail``, ...; the ``bench-`` prefix is
reserved), which no agent serves, no real budget pays for and cost reports leave out; once the
run is over `cleanup_bench` takes its tickets out of the escalation queue.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pinworks_common.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, SUBMITTED, message_id

if TYPE_CHECKING:
    from nats.aio.msg import Msg

BENCH_UNIT_PREFIX = "bench-"

SAMPLE_TICKETS: tuple[tuple[str, str], ...] = (
    (
        "Card declined abroad",
        "My debit card was declined at a shop in Lisbon this morning even "
        "though I have money in my account. Can you check what is going on?",
    ),
    (
        "Charged twice",
        "I was charged twice for the same grocery purchase of 54.20 on Monday. "
        "Please refund the duplicate payment.",
    ),
    (
        "Lost card",
        "I think I lost my credit card on the train yesterday. Please block it and send me a replacement.",
    ),
    (
        "Mortgage question",
        "What documents do I need to apply for a mortgage top-up, and how long "
        "does the approval usually take?",
    ),
    (
        "Transfer not arrived",
        "I sent 1,200 to my landlord three days ago and he says it has not "
        "arrived. The reference was RENT-MAY.",
    ),
    (
        "Overdraft fee",
        "Why was I charged an overdraft fee of 25 when my salary landed the same "
        "day? I'd like this fee reversed.",
    ),
    (
        "Change address",
        "I moved house last week. How do I update my postal address for statements?",
    ),
    (
        "Suspicious login",
        "I got a text about a login from a device I don't recognise. I did not log in. Is my account safe?",
    ),
    (
        "Interest rate",
        "What is the current interest rate on the easy-access savings account, and is it variable?",
    ),
    (
        "Standing order",
        "Please cancel the standing order to Greenfield Gym, I ended that membership.",
    ),
    (
        "Statement request",
        "Could you send me my statements for January to March as PDFs for my tax return?",
    ),
    (
        "Complaint",
        "This is the third time I'm writing about the ATM that kept my card. Nobody has "
        "called me back. I want to speak to a manager.",
    ),
)
CHANNELS = ("email", "chat", "web")


@dataclass
class BenchResult:
    """What a run measured; the statistics are derived, so they can be tested without NATS."""

    run_id: str
    requested: int
    published: int
    publish_errors: int
    first_publish: float | None
    last_outcome: float | None
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    duplicates: int = 0
    timed_out: bool = False

    @property
    def received(self) -> int:
        return len(self.latencies)

    @property
    def duration(self) -> float:
        if self.first_publish is None or self.last_outcome is None:
            return 0.0
        return max(0.0, self.last_outcome - self.first_publish)

    @property
    def throughput(self) -> float:
        return throughput(self.received, self.first_publish, self.last_outcome)

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)

    @property
    def p99(self) -> float | None:
        return percentile(self.latencies, 99)

    @property
    def max_latency(self) -> float | None:
        return max(self.latencies) if self.latencies else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def throughput(completed: int, first_publish: float | None, last_outcome: float | None) -> float:
    """Tickets per second from the first publish to the last outcome (0 when undefined)."""
    if not completed or first_publish is None or last_outcome is None:
        return 0.0
    elapsed = last_outcome - first_publish
    return completed / elapsed if elapsed > 0 else 0.0


def make_ticket(run_id: str, n: int, business_units: Sequence[str]) -> dict[str, object]:
    """The ``n``-th ticket of a run; texts and channels cycle so every run has the same mix."""
    subject, body = SAMPLE_TICKETS[n % len(SAMPLE_TICKETS)]
    return {
        "ticket_id": f"bench-{run_id}-{n}",
        "business_unit": business_units[n % len(business_units)],
        "body": body,
        "subject": subject,
        "channel": CHANNELS[n % len(CHANNELS)],
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


def is_bench_unit(business_unit: str) -> bool:
    """Business units starting with `bench-` are reserved for the bench's synthetic tickets."""
    return business_unit.startswith(BENCH_UNIT_PREFIX)


async def run_bench(
    nats_url: str,
    count: int,
    concurrency: int,
    business_units: Sequence[str],
    *,
    time_limit: float = 120.0,
    run_id: str | None = None,
    on_outcome: Callable[[int], None] | None = None,
) -> BenchResult:
    """Publish ``count`` tickets, at most ``concurrency`` in flight, until done or time is up."""
    if count < 1 or concurrency < 1:
        raise ValueError("count and concurrency must be at least 1")
    if not business_units:
        raise ValueError("at least one business unit is needed")
    run_id = run_id or uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}-"
    sent_at: dict[str, float] = {}
    done_at: dict[str, float] = {}
    waiters: dict[str, asyncio.Event] = {}
    statuses: Counter[str] = Counter()
    duplicates = 0
    publish_errors = 0

    progress = on_outcome

    async def on_outcome_msg(msg: Msg) -> None:
        nonlocal duplicates
        arrived = time.perf_counter()
        try:
            payload = json.loads(msg.data)
            ticket_id = str(payload.get("ticket_id", ""))
        except (ValueError, AttributeError):
            return
        if not ticket_id.startswith(prefix):
            return
        if ticket_id in done_at:
            duplicates += 1
            return
        done_at[ticket_id] = arrived
        statuses[str(payload.get("status") or msg.subject.rsplit(".", 1)[-1])] += 1
        if progress is not None:
            progress(len(done_at))
        if (event := waiters.get(ticket_id)) is not None:
            event.set()

    from nats.js.api import DeliverPolicy

    from pinworks_cli.infra import connect_nats

    nc = await connect_nats(nats_url)
    timed_out = False
    try:
        js = nc.jetstream()
        # The outcomes stream holds each outcome once (a re-publish after a redelivery is
        # dropped there); a plain core subscription would also see the dropped copy.
        await js.subscribe(OUTCOME_WILDCARD, stream=OUTCOMES_STREAM, cb=on_outcome_msg,
                           ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                           pending_msgs_limit=0)
        await nc.flush()
        deadline = time.perf_counter() + time_limit
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def worker() -> None:
            nonlocal publish_errors
            while (remaining := deadline - time.perf_counter()) > 0:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                ticket = make_ticket(run_id, n, business_units)
                ticket_id = str(ticket["ticket_id"])
                event = waiters[ticket_id] = asyncio.Event()
                sent_at[ticket_id] = time.perf_counter()
                try:
                    await js.publish(
                        SUBMITTED,
                        json.dumps(ticket).encode(),
                        headers={"Nats-Msg-Id": message_id(ticket_id, "submitted")},
                        timeout=min(5.0, remaining),
                    )
                except Exception:  # a failed publish is a data point, not a crash
                    publish_errors += 1
                    del sent_at[ticket_id]
                    continue
                try:
                    await asyncio.wait_for(event.wait(), deadline - time.perf_counter())
                except TimeoutError:
                    return

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, count))]
        await asyncio.gather(*workers)
        timed_out = time.perf_counter() >= deadline and len(done_at) < count
    finally:
        await nc.drain()

    published = sorted(sent_at, key=sent_at.__getitem__)
    received = [tid for tid in published if tid in done_at]
    return BenchResult(
        run_id=run_id,
        requested=count,
        published=len(published),
        publish_errors=publish_errors,
        first_publish=sent_at[published[0]] if published else None,
        last_outcome=max((done_at[t] for t in received), default=None),
        latencies=[done_at[t] - sent_at[t] for t in received],
        statuses=dict(statuses),
        missing=[t for t in published if t not in done_at],
        duplicates=duplicates,
        timed_out=timed_out,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def format_result(result: BenchResult) -> str:
    """A short human-readable report of a run."""
    statuses = ", ".join(f"{k}={v}" for k, v in sorted(result.statuses.items())) or "none"
    lines = [
        f"bench run {result.run_id}",
        f"  tickets     requested {result.requested}, published {result.published}, "
        f"outcomes {result.received}, publish errors {result.publish_errors}",
        f"  throughput  {result.throughput:.2f} tickets/s over {result.duration:.2f}s "
        "(first publish to last outcome)",
        f"  latency     p50 {_ms(result.p50)}, p95 {_ms(result.p95)}, p99 {_ms(result.p99)}, "
        f"max {_ms(result.max_latency)}",
        f"  outcomes    {statuses}",
    ]
    if result.duplicates:
        lines.append(
            f"  later       {result.duplicates} further outcome(s) for answered tickets"
            " (e.g. escalated, then resolved by an agent)"
        )
    unsent = result.requested - result.published - result.publish_errors
    if result.missing or unsent > 0:
        shown = ", ".join(result.missing[:5]) + (" ..." if len(result.missing) > 5 else "")
        lines.append(f"  missing     {len(result.missing)} without an outcome {shown}".rstrip())
        if unsent > 0:
            lines.append(f"  not sent    {unsent} (deadline reached first)")
    if result.timed_out:
        lines.append("  timed out   the run hit its deadline before every outcome arrived")
    return "\n".join(lines)
