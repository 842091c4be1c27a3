"""The in-process baseline of `pinworks bench`: the bench's own tickets decided in this process
by the services' domain code (classify -> route -> the template draft of the tickets the route
sends to the template -> every verifier check on each draft -> the escalation stage's queue
decision and the agent-assist suggestion of each ticket the route sends to a person, those two
steps picking their tickets themselves as their stages only receive those), in batches as the
services take them, with no NATS, no Postgres and no framework.

A specialist's step (one named after an automated handler) drafts only the tickets routed to
that handler, as the platform's consumer of that handler only receives those (`follow_route`);
a ticket routed to a person, or to a handler with no step, passes on undrafted.

The steps come from the services' `pinworks.inprocess` entry points (the CLI imports no
service). The platform's CPU per ticket over this one's is the orchestration overhead.

`InProcess` loads the steps once and is warmed on the same warm-up tickets the platform gets
before its first measured round, so neither side's figure carries one-off costs (lazy sessions,
the per-word feature caches of the verifier's scorers) the other does not; then `measure` can be
called between the platform's rounds, each call the same tickets, so the two figures are taken
side by side on a machine whose other load moves both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pinworks_cli.bench_figures import Baseline
from pinworks_cli.bench_texts import kind_of
from pinworks_common.provenance import HUMAN
from pinworks_contracts.identities import AUTOMATED_HANDLERS

Step = Callable[[Sequence[Any]], list[Any]]


def follow_route(handler: str, step: Step) -> Step:
    """`handler`'s step on the envelopes of a batch the router sent to `handler` (their order
    kept); the others pass on untouched and the step is not called for a batch without one."""
    def routed(batch: Sequence[Any]) -> list[Any]:
        items = list(batch)
        mine = [i for i, envelope in enumerate(items)
                if envelope.route is not None and envelope.route.handler == handler]
        if mine:
            for i, decided in zip(mine, step([items[i] for i in mine]), strict=True):
                items[i] = decided
        return items

    return routed


def routed_steps(steps: Sequence[tuple[str, Step]]) -> list[tuple[str, Step]]:
    """The steps with each specialist's (named after an automated handler) following the
    route."""
    return [(name, follow_route(name, step) if name in AUTOMATED_HANDLERS else step)
            for name, step in steps]


def envelopes(tickets: Sequence[dict[str, object]]) -> list[object]:
    """The tickets as the classifier would hand them on, before any decision."""
    from pinworks_contracts.messages import TicketEnvelope, TicketSubmission

    now = datetime.now(UTC)
    return [TicketEnvelope(ticket=TicketSubmission.model_validate(ticket), trace_id="0" * 32,
                           received_at=now) for ticket in tickets]


def decision_of(envelope: Any) -> tuple[str, str]:
    """An envelope through every step: its ticket id and who answers it by the baseline's
    decisions (`Baseline.decisions`)."""
    ticket_id = envelope.ticket.ticket_id
    if envelope.draft is not None:
        return ticket_id, envelope.draft.handler
    handler = envelope.route.handler if envelope.route is not None else "unrouted"
    return ticket_id, handler if handler == HUMAN else f"{handler} undrafted"


def run_steps(steps: Sequence[tuple[str, Step]], batches: Sequence[Sequence[object]],
              kinds: Sequence[str], clock: Callable[[], float] = time.process_time,
              decide: Callable[[Any], tuple[str, str]] | None = None) -> Baseline:
    """Every batch through every step in order; CPU (`clock`) per step and per batch's kind.
    The baseline's CPU is the sum of the step calls' own readings: the decision work and
    nothing of the loop around it. With `decide`, each item's (key, decision) after the last
    step, untimed, in `Baseline.decisions`."""
    wall_started = time.perf_counter()
    baseline = Baseline(tickets=0, cpu_seconds=0.0, wall_seconds=0.0)
    for batch, kind in zip(batches, kinds, strict=True):
        items = list(batch)
        batch_seconds = 0.0
        for name, step in steps:
            started = clock()
            items = step(items)
            seconds = clock() - started
            baseline.step_seconds[name] = baseline.step_seconds.get(name, 0.0) + seconds
            batch_seconds += seconds
        if decide is not None:
            baseline.decisions.update(decide(item) for item in items)
        baseline.kind_seconds[kind] = baseline.kind_seconds.get(kind, 0.0) + batch_seconds
        baseline.kind_tickets[kind] = baseline.kind_tickets.get(kind, 0) + len(batch)
        baseline.tickets += len(batch)
        baseline.cpu_seconds += batch_seconds
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


class InProcess:
    """The installed steps, loaded once (untimed), and the tickets every measurement decides."""

    def __init__(self, tickets: Sequence[dict[str, object]], batch_size: int,
                 steps: Sequence[tuple[str, Step]] | None = None,
                 clock: Callable[[], float] = time.process_time) -> None:
        if steps is None:
            from pinworks_common.commands.plugins import inprocess_steps

            steps = [(name, factory()) for name, factory in inprocess_steps()]
        self.steps = routed_steps(steps)
        self.tickets = list(tickets)
        self.batch_size = batch_size
        self.clock = clock

    def warm(self, numbers: Sequence[int], tickets: Sequence[dict[str, object]]) -> None:
        """`tickets` (numbered `numbers`) through every step, untimed, in batches shaped as the
        measured ones: first calls pay one-off costs (lazy sessions, caches) that no
        measurement should carry."""
        if tickets:
            run_steps(self.steps, *kind_batches(numbers, envelopes(tickets), self.batch_size),
                      clock=self.clock)

    def measure(self) -> Baseline:
        """One timed pass over the tickets (fresh envelopes each time)."""
        items = envelopes(self.tickets)
        batches, kinds = kind_batches(range(len(items)), items, self.batch_size)
        return run_steps(self.steps, batches, kinds, clock=self.clock, decide=decision_of)


def run_baseline(tickets: Sequence[dict[str, object]], batch_size: int) -> Baseline:
    """Load every step (untimed), warm them on the same tickets, then time all of them once."""
    baseline = InProcess(tickets, batch_size)
    baseline.warm(range(len(tickets)), tickets)
    return baseline.measure()
