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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pinworks_cli.bench_figures import BenchResult, ModelHops, read_model_hops
from pinworks_common.synthetic import BENCH_UNIT_PREFIX
from pinworks_contracts.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM, submission_message_id

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext


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


@dataclass
class _Run:
    """One run's tickets in flight: when each was sent, when its first outcome came back."""

    run_id: str
    business_units: Sequence[str]
    on_outcome: Callable[[int], None] | None
    subject: str
    """The submission subject of the platform the bench submits as."""
    deadline: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    done_at: dict[str, float] = field(default_factory=dict)
    waiters: dict[str, asyncio.Event] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    handlers: Counter[str] = field(default_factory=Counter)
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
        self.handlers[str(payload.get("handler") or "?") if status == "resolved"
                      else "human" if status == "escalated" else status] += 1
        if self.on_outcome is not None:
            self.on_outcome(len(self.done_at))
        if (event := self.waiters.get(ticket_id)) is not None:
            event.set()

    async def publish_from(self, js: JetStreamContext, queue: asyncio.Queue[int]) -> None:
        """One slot of the concurrency: publish a ticket, wait for its outcome, take the next."""
        while (remaining := self.deadline - time.perf_counter()) > 0:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            ticket = make_ticket(self.run_id, n, self.business_units)
            ticket_id = str(ticket["ticket_id"])
            event = self.waiters[ticket_id] = asyncio.Event()
            self.sent_at[ticket_id] = time.perf_counter()
            try:
                await js.publish(
                    self.subject,
                    json.dumps(ticket).encode(),
                    headers={"Nats-Msg-Id": submission_message_id(ticket_id)},
                    timeout=min(5.0, remaining),
                )
            except Exception:  # a failed publish is a data point, not a crash
                self.publish_errors += 1
                del self.sent_at[ticket_id]
                continue
            try:
                await asyncio.wait_for(event.wait(), self.deadline - time.perf_counter())
            except TimeoutError:
                return

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
    subject: str | None = None,
) -> BenchResult:
    """Publish ``count`` tickets on ``subject`` (the submission subject of the platform the
    command acts as, when None), at most ``concurrency`` in flight, until done or time is up."""
    if count < 1 or concurrency < 1:
        raise ValueError("count and concurrency must be at least 1")
    if not business_units:
        raise ValueError("at least one business unit is needed")
    from nats.js.api import DeliverPolicy

    from pinworks_common.commands.platform import connect_nats, submission_subject_of_client

    run = _Run(run_id or uuid.uuid4().hex[:8], business_units, on_outcome,
               subject or submission_subject_of_client())
    nc = await connect_nats(nats_url)
    timed_out = False
    try:
        js = nc.jetstream()
        # The outcomes stream holds each outcome once (a re-publish after a redelivery is
        # dropped there); a plain core subscription would also see the dropped copy.
        await js.subscribe(OUTCOME_WILDCARD, stream=OUTCOMES_STREAM, cb=run.record_outcome,
                           ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                           pending_msgs_limit=0)
        await nc.flush()
        run.deadline = time.perf_counter() + time_limit
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)
        workers = [asyncio.create_task(run.publish_from(js, queue))
                   for _ in range(min(concurrency, count))]
        await asyncio.gather(*workers)
        timed_out = time.perf_counter() >= run.deadline and len(run.done_at) < count
    finally:
        await nc.drain()
    model = await read_model_hops(database_url, run.prefix) if database_url else None
    return run.result(count, timed_out, model)
