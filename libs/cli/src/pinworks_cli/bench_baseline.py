"""The in-process baseline of `pinworks bench`: the bench's own tickets decided in this process
by the services' domain code (classify -> route -> template -> every verifier check), in
batches as the services take them, with no NATS, no Postgres and no framework.

The steps come from the services' `pinworks.inprocess` entry points (the CLI imports no
service). The platform's CPU per ticket over this one's is the orchestration overhead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pinworks_cli.bench_figures import Baseline
from pinworks_cli.bench_texts import kind_of

Step = Callable[[Sequence[Any]], list[Any]]


def envelopes(tickets: Sequence[dict[str, object]]) -> list[object]:
    """The tickets as the classifier would hand them on, before any decision."""
    from pinworks_contracts.messages import TicketEnvelope, TicketSubmission

    now = datetime.now(UTC)
    return [TicketEnvelope(ticket=TicketSubmission.model_validate(ticket), trace_id="0" * 32,
                           received_at=now) for ticket in tickets]


def run_steps(steps: Sequence[tuple[str, Step]], batches: Sequence[Sequence[object]],
              kinds: Sequence[str], clock: Callable[[], float] = time.process_time) -> Baseline:
    """Every batch through every step in order; CPU (`clock`) per step and per batch's kind."""
    wall_started, cpu_started = time.perf_counter(), clock()
    baseline = Baseline(tickets=0, cpu_seconds=0.0, wall_seconds=0.0)
    for batch, kind in zip(batches, kinds, strict=True):
        batch_started = clock()
        items = list(batch)
        for name, step in steps:
            started = clock()
            items = step(items)
            baseline.step_seconds[name] = baseline.step_seconds.get(name, 0.0) + clock() - started
        baseline.kind_seconds[kind] = baseline.kind_seconds.get(kind, 0.0) + clock() - batch_started
        baseline.kind_tickets[kind] = baseline.kind_tickets.get(kind, 0) + len(batch)
        baseline.tickets += len(batch)
    baseline.cpu_seconds = clock() - cpu_started
    baseline.wall_seconds = time.perf_counter() - wall_started
    return baseline


def kind_batches(numbers: Sequence[int], items: Sequence[object], batch_size: int
                 ) -> tuple[list[list[object]], list[str]]:
    """`items` (the tickets numbered `numbers`) in batches of one kind of text each, so the
    baseline can say what each kind costs."""
    by_kind: dict[str, list[object]] = {}
    for n, item in zip(numbers, items, strict=True):
        by_kind.setdefault(kind_of(n), []).append(item)
    batches, kinds = [], []
    for kind, members in by_kind.items():
        for start in range(0, len(members), batch_size):
            batches.append(members[start:start + batch_size])
            kinds.append(kind)
    return batches, kinds


def run_baseline(tickets: Sequence[dict[str, object]], batch_size: int) -> Baseline:
    """Load every step (untimed), warm them on one batch, then time all the tickets."""
    from pinworks_common.commands.plugins import inprocess_steps

    steps: list[tuple[str, Step]] = [(name, factory()) for name, factory in inprocess_steps()]
    items = envelopes(tickets)
    for _, step in steps:  # first calls pay one-off costs (lazy sessions, caches)
        warm = step(items[:batch_size])
        items[:batch_size] = warm
    items = envelopes(tickets)
    batches, kinds = kind_batches(range(len(items)), items, batch_size)
    return run_steps(steps, batches, kinds)
