"""``pinworks bench``: end-to-end throughput and latency through the running platform.

It behaves like a support platform: publishes tickets on ``tickets.submitted`` and listens on
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
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pinworks_common.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, SUBMITTED, message_id
from pinworks_common.synthetic import BENCH_UNIT_PREFIX

if TYPE_CHECKING:
    from nats.aio.msg import Msg

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
    (
        "Card and top-up",
        "How long does a new card take to arrive? And can I top up my account by bank "
        "transfer while I wait?",
    ),
    (
        "Fees abroad",
        "Do you charge a fee when I pay by card in another currency? Is there also a fee for "
        "taking cash out of an ATM abroad?",
    ),
    (
        "Something missing",
        "the thing I was sent hasn't shown up",
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
    handlers: dict[str, int] = field(default_factory=dict)
    """First outcome of each ticket by who answered: a handler, `human` (escalated) or
    `rejected`."""
    model: ModelHops | None = None

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


@dataclass(frozen=True)
class ModelCall:
    """One model hop as the specialist recorded it."""

    handler: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    drafted: bool
    resolved: bool


@dataclass
class ModelHops:
    """The model hops of a run, from the audit."""

    calls: list[ModelCall] = field(default_factory=list)

    def of(self, handler: str) -> list[ModelCall]:
        return [c for c in self.calls if c.handler == handler]

    @property
    def handlers(self) -> list[str]:
        return sorted({c.handler for c in self.calls})


def summarise_calls(calls: Sequence[ModelCall]) -> dict[str, float | int | None]:
    """Latency percentiles, generation rate (output tokens per second of the call, over calls
    that produced tokens) and the drafted / verified shares of one handler's calls."""
    latencies = [c.latency_ms / 1000 for c in calls]
    producing = [c for c in calls if c.output_tokens and c.latency_ms > 0]
    total_out = sum(c.output_tokens for c in producing)
    total_seconds = sum(c.latency_ms for c in producing) / 1000
    return {
        "calls": len(calls),
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "tokens_per_s": total_out / total_seconds if total_seconds else None,
        "mean_input_tokens": (sum(c.input_tokens for c in calls) / len(calls)) if calls else None,
        "mean_output_tokens": (sum(c.output_tokens for c in calls) / len(calls)) if calls else None,
        "estimated": sum(c.tokens_estimated for c in calls),
        "drafted": sum(c.drafted for c in calls),
        "verified": sum(c.resolved for c in calls),
    }


MODEL_HOPS_SQL = """
SELECT d.ticket_id, d.component, d.latency_ms, d.output,
       EXISTS (SELECT 1 FROM outcomes o WHERE o.ticket_id = d.ticket_id AND o.status = 'resolved'
               AND o.payload->>'handler' = substr(d.component, 12)) AS resolved
FROM decisions d
WHERE d.stage = 'specialist' AND d.component LIKE 'specialist:llm%' AND d.ticket_id LIKE :prefix
"""


async def read_model_hops(database_url: str, run_prefix: str) -> ModelHops:
    """Every model hop of the run's tickets (ids starting with ``run_prefix``)."""
    from sqlalchemy import text

    from pinworks_common.db.engine import create_engine

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(MODEL_HOPS_SQL), {"prefix": f"{run_prefix}%"})).all()
    finally:
        await engine.dispose()
    hops = ModelHops()
    for row in rows:
        usage = (row.output or {}).get("usage") or {}
        hops.calls.append(ModelCall(
            handler=row.component.removeprefix("specialist:"),
            latency_ms=float(row.latency_ms or 0.0),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            tokens_estimated=bool(usage.get("tokens_estimated")),
            drafted="draft" in (row.output or {}),
            resolved=bool(row.resolved),
        ))
    return hops


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
    handlers: Counter[str] = Counter()
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
        status = str(payload.get("status") or msg.subject.rsplit(".", 1)[-1])
        statuses[status] += 1
        handlers[str(payload.get("handler") or "?") if status == "resolved"
                 else "human" if status == "escalated" else status] += 1
        if progress is not None:
            progress(len(done_at))
        if (event := waiters.get(ticket_id)) is not None:
            event.set()

    from nats.js.api import DeliverPolicy

    from pinworks_common.commands.platform import connect_nats

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
    model = await read_model_hops(database_url, prefix) if database_url else None
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
        handlers=dict(handlers),
        model=model,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def format_model_hops(hops: ModelHops) -> list[str]:
    if not hops.calls:
        return ["  model hops  none (no ticket of this run was tried by a model)"]
    lines = []
    for handler in hops.handlers:
        m = summarise_calls(hops.of(handler))
        rate = "-" if m["tokens_per_s"] is None else f"{m['tokens_per_s']:.1f} tokens/s"
        mean_in = m["mean_input_tokens"] or 0
        mean_out = m["mean_output_tokens"] or 0
        p50 = m["p50_s"]
        p95 = m["p95_s"]
        lines.append(
            f"  {handler:<11} {m['calls']} calls, latency p50 {_ms(p50)}, p95 {_ms(p95)}; "
            f"{mean_in:.0f} in / {mean_out:.0f} out tokens per call, generation {rate}"
            + (f" ({m['estimated']} estimated)" if m["estimated"] else ""))
        calls = int(m["calls"] or 0)
        lines.append(f"  {'':<11} drafted {m['drafted']}/{calls}, verified and sent "
                     f"{m['verified']}/{calls} ({(m['verified'] or 0) / calls:.0%})")
    return lines


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
    if result.handlers:
        total = sum(result.handlers.values())
        shares = ", ".join(f"{name} {n} ({n / total:.0%})" for name, n in
                           sorted(result.handlers.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  answered by {shares}")
    if result.model is not None:
        lines += format_model_hops(result.model)
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
