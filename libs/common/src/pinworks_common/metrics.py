"""Prometheus metrics every service shares, served as `/metrics` on the health port.

Each service is its own process, so the process-wide default registry is the service's.
Instruments are module-level (Prometheus convention); nothing here connects or reads settings.

Counters that mirror the audit trail (decisions, costs, outcomes) are incremented only for rows
a transaction really inserted, and only once it commits: `after_commit` queues the increment
and `until_commit` (the stage runner wraps each transaction in it) runs the queue on success and
drops it on rollback. So a redelivery or a rolled-back batch never moves a counter, and the
counters agree with Postgres.

Labels are bounded: no ticket ids, and values a sender chooses (the business unit) pass through
`BoundedLabel`, which keeps the first `limit` distinct values and folds the rest into `other`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pinworks_common.background import BackgroundTask

log = logging.getLogger("pinworks.metrics")

OTHER = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                      600.0, 1800.0, 3600.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class BoundedLabel:
    """A label whose values come from outside: the first `limit` distinct values are kept, any
    later one is reported as `other`, so a sender cannot blow up the series count."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return "unknown"
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER


business_unit_label = BoundedLabel(100)
"""The one business-unit label mapping of this process (every service labels units alike)."""


# --------------------------------------------------------------------------- after commit

_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar("pinworks_pending_metrics",
                                                                   default=None)


def after_commit(observe: Callable[[], None]) -> None:
    """Run `observe` once the surrounding `until_commit` block succeeds; at once outside one."""
    pending = _pending.get()
    if pending is None:
        _run(observe)
    else:
        pending.append(observe)


@contextlib.contextmanager
def until_commit() -> Iterator[None]:
    """Hold `after_commit` observations until the block (a transaction) ends without error."""
    pending: list[Callable[[], None]] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    for observe in pending:  # not reached when the block raised: a rollback counts nothing
        _run(observe)


def _run(observe: Callable[[], None]) -> None:
    try:
        observe()
    except Exception:  # noqa: BLE001 - a metrics bug must never fail the work it measures
        log.exception("metrics observation failed")


# --------------------------------------------------------------------------- stage runner

STAGE_MESSAGES = Counter(
    "pinworks_stage_messages_total",
    "Messages a stage consumer finished with, by result: handled (effects committed, acked), "
    "failed (an attempt raised), retried (negatively acked for redelivery), dead_lettered.",
    ["stage", "consumer", "result"],
)
STAGE_SECONDS = Histogram(
    "pinworks_stage_seconds",
    "Time from a batch's arrival to its acknowledgement, observed once per handled message.",
    ["stage", "consumer"], buckets=LATENCY_BUCKETS,
)
STAGE_BATCH_SIZE = Histogram(
    "pinworks_stage_batch_size", "Messages per pulled batch.", ["stage", "consumer"],
    buckets=BATCH_SIZE_BUCKETS,
)
STAGE_BATCH_FALLBACKS = Counter(
    "pinworks_stage_batch_fallbacks_total",
    "Batches whose transaction failed and were retried message by message.",
    ["stage", "consumer"],
)


class StageObserver(Protocol):
    """What the stage runner reports; `StageMetrics` turns it into Prometheus series."""

    def batch(self, size: int) -> None: ...

    def handled(self, count: int, seconds: float) -> None: ...

    def batch_fallback(self) -> None: ...

    def failed(self, *, retried: bool) -> None: ...

    def dead_lettered(self) -> None: ...


class StageMetrics:
    def __init__(self, stage: str, consumer: str | None = None) -> None:
        self.stage = stage
        self.consumer = consumer or stage

    def _labels(self) -> tuple[str, str]:
        return self.stage, self.consumer

    def batch(self, size: int) -> None:
        STAGE_BATCH_SIZE.labels(*self._labels()).observe(size)

    def handled(self, count: int, seconds: float) -> None:
        if count <= 0:
            return
        STAGE_MESSAGES.labels(*self._labels(), "handled").inc(count)
        histogram = STAGE_SECONDS.labels(*self._labels())
        for _ in range(count):
            histogram.observe(seconds)

    def batch_fallback(self) -> None:
        STAGE_BATCH_FALLBACKS.labels(*self._labels()).inc()

    def failed(self, *, retried: bool) -> None:
        STAGE_MESSAGES.labels(*self._labels(), "failed").inc()
        if retried:
            STAGE_MESSAGES.labels(*self._labels(), "retried").inc()

    def dead_lettered(self) -> None:
        STAGE_MESSAGES.labels(*self._labels(), "dead_lettered").inc()


# --------------------------------------------------------------------------- audit mirrors

DECISIONS = Counter(
    "pinworks_decisions_total", "Decision rows recorded in the audit trail, by stage.", ["stage"]
)
COST_USD = Counter(
    "pinworks_cost_usd_total",
    "Cost attributed in the ledger, in USD, by business unit and component (the handler).",
    ["business_unit", "component"],
)
OUTCOMES = Counter(
    "pinworks_outcomes_total",
    "Outcomes recorded, by status, business unit and who decided (automation or person).",
    ["status", "business_unit", "by"],
)
END_TO_END_SECONDS = Histogram(
    "pinworks_end_to_end_seconds",
    "From a ticket's acceptance to its recorded outcome, by outcome status and who decided "
    "(a person's answer includes the time it waited in the queue).",
    ["status", "by"], buckets=END_TO_END_BUCKETS,
)
AUTOMATION = "automation"


def observe_decisions(stage_counts: dict[str, int]) -> None:
    def observe() -> None:
        for stage, count in stage_counts.items():
            DECISIONS.labels(stage).inc(count)

    after_commit(observe)


def observe_costs(rows: list[tuple[str | None, str, float]]) -> None:
    """(business unit, component, amount) of newly recorded ledger rows."""
    def observe() -> None:
        totals: dict[tuple[str, str], float] = {}
        for unit, component, amount in rows:
            key = (business_unit_label(unit), component)
            totals[key] = totals.get(key, 0.0) + amount
        for key, amount in totals.items():
            COST_USD.labels(*key).inc(amount)

    after_commit(observe)


def observe_outcomes(rows: list[tuple[str, str | None, str, float | None]]) -> None:
    """(status, business unit, resolved_by, seconds since acceptance or None) of newly
    recorded outcomes; resolved_by is reduced to automation or person (never an agent's id)."""
    def observe() -> None:
        counts: dict[tuple[str, str, str], int] = {}
        latencies: dict[tuple[str, str], list[float]] = {}
        for status, unit, resolved_by, seconds in rows:
            by = AUTOMATION if resolved_by == AUTOMATION else "person"
            key = (status, business_unit_label(unit), by)
            counts[key] = counts.get(key, 0) + 1
            if seconds is not None:
                latencies.setdefault((status, by), []).append(max(seconds, 0.0))
        for key, count in counts.items():
            OUTCOMES.labels(*key).inc(count)
        for (status, by), values in latencies.items():
            histogram = END_TO_END_SECONDS.labels(status, by)
            for value in values:
                histogram.observe(value)

    after_commit(observe)


# --------------------------------------------------------------------------- consumer lag

CONSUMER_PENDING = Gauge(
    "pinworks_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer (JetStream num_pending).",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "pinworks_consumer_ack_pending_messages",
    "Messages delivered to the consumer and not yet acknowledged.", ["stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "pinworks_consumer_redelivered_messages",
    "Messages delivered more than once and still unacknowledged.", ["stream", "consumer"],
)
METRIC_POLL_ERRORS = Counter(
    "pinworks_metric_poll_errors_total",
    "Periodic metric reads (consumer info, queue depth, budgets) that failed.", ["poller"],
)


async def poll_consumer_lag(js: Any, consumers: list[tuple[str, str]]) -> None:
    """Read each (stream, durable) consumer's backlog from JetStream."""
    for stream, durable in consumers:
        info = await js.consumer_info(stream, durable)
        CONSUMER_PENDING.labels(stream, durable).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
        CONSUMER_REDELIVERED.labels(stream, durable).set(info.num_redelivered or 0)


Poll = Callable[[], Awaitable[None]]


class Poller:
    """Runs named reads every `interval_seconds` (and once at start); a failing read is counted
    and logged, never fatal."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self.polls: dict[str, Poll] = {}
        self._loop_task = BackgroundTask("pinworks-metrics-poller")

    def add(self, name: str, poll: Poll) -> None:
        self.polls[name] = poll

    async def poll_once(self) -> None:
        for name, poll in self.polls.items():
            try:
                await poll()
            except Exception as error:  # noqa: BLE001
                METRIC_POLL_ERRORS.labels(name).inc()
                log.warning("metrics poll %s failed: %r", name, error)

    async def start(self) -> None:
        if self.polls and not self._loop_task.running:
            self._loop_task.start(self._loop())

    async def stop(self) -> None:
        await self._loop_task.stop()

    async def _loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_seconds)


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
