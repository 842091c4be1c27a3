"""What a `pinworks bench` run measured, and the report it prints.

The statistics are derived from the raw timings, so they are tested without NATS; the model
hops come from the audit (every `llm_*` specialist decision of the run's tickets): their
latency, the tokens the server reported, the generation rate, and how many of the tickets a
model tried it answered with a verified draft. CPU per ticket per process comes from two
readings around the full-load run (`bench_cpu`), the in-process baseline from `bench_baseline`;
the overhead ratio is the platform's CPU per ticket over the baseline's, so both figures are
CPU time of the same tickets and the ratio does not move with the machine's other load.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


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
    answered_by: dict[str, str] = field(default_factory=dict)
    """The same per ticket id (what `handlers` counts)."""
    model: ModelHops | None = None
    cpu: dict[str, float | None] | None = None
    """CPU-ms per answered ticket of each of the platform's processes during the run."""
    idle_cpu: dict[str, float | None] | None = None
    """CPU-ms per second of each process with no ticket in flight, read just before the run:
    polling that the run's figures include and that a busier run spreads thinner."""
    hops: dict[str, list[float]] | None = None
    """Each ticket's time hop by hop, from the audit (`bench_hops`; the paced run's)."""
    seconds: float | None = None
    """A run of several rounds (`combine`): the sum of their first-publish-to-last-outcome
    times, the pauses between them left out."""

    @property
    def received(self) -> int:
        return len(self.latencies)

    @property
    def duration(self) -> float:
        if self.seconds is not None:
            return self.seconds
        if self.first_publish is None or self.last_outcome is None:
            return 0.0
        return max(0.0, self.last_outcome - self.first_publish)

    @property
    def throughput(self) -> float:
        if self.seconds is not None:
            return self.received / self.seconds if self.seconds > 0 else 0.0
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


MODEL_PROCESS = "model"
"""The local model server `pinworks run` may start: listed, but not in the platform's total
(the in-process baseline calls no model)."""


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds of each named process (its whole tree) at one moment, and the pids read."""

    pids: dict[str, int]
    seconds: dict[str, float]


def cpu_per_ticket(before: CpuReading, after: CpuReading, tickets: float
                   ) -> dict[str, float | None]:
    """CPU-ms per ticket of each process between two readings; None for a process missing from
    either reading or restarted in between (another pid), or when no ticket was answered.
    Given seconds instead of tickets, it is CPU-ms per second (the idle reading)."""
    figures: dict[str, float | None] = {}
    for name, pid in before.pids.items():
        start, end = before.seconds.get(name), after.seconds.get(name)
        if (tickets <= 0 or start is None or end is None or after.pids.get(name) != pid
                or end < start):
            figures[name] = None
            continue
        figures[name] = (end - start) * 1000 / tickets
    return figures


PLATFORM_PROCESSES = ("classifier", "router", "specialists", "verifier", "escalation",
                      "nats-server", "postgres")
"""The processes whose CPU is the platform's: the five services, NATS and Postgres."""


def missing_processes(figures: dict[str, float | None]) -> list[str]:
    """The platform's processes without a figure (not found, not on this machine, restarted)."""
    return [name for name in PLATFORM_PROCESSES if figures.get(name) is None]


def platform_total(figures: dict[str, float | None]) -> float | None:
    """CPU-ms per ticket of the whole platform (`PLATFORM_PROCESSES`; not the model server);
    None when one of them has no figure, since a partial sum would flatter the platform."""
    if missing_processes(figures):
        return None
    return sum(figures[name] or 0.0 for name in PLATFORM_PROCESSES)


@dataclass
class Baseline:
    """The same tickets decided in one process: CPU seconds per step and per kind of text."""

    tickets: int
    cpu_seconds: float
    wall_seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    kind_seconds: dict[str, float] = field(default_factory=dict)
    kind_tickets: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    """Who answers each ticket id by the baseline's decisions: the handler of its draft,
    `human` when the route sends it to a person, `<handler> undrafted` when the route's handler
    gave no draft (the platform would take it down the fallback chain, the baseline does not)."""

    @property
    def ms_per_ticket(self) -> float | None:
        return self.cpu_seconds * 1000 / self.tickets if self.tickets else None

    @property
    def tickets_per_cpu_second(self) -> float | None:
        return self.tickets / self.cpu_seconds if self.cpu_seconds > 0 else None

    def kind_ms(self, kind: str) -> float | None:
        tickets = self.kind_tickets.get(kind, 0)
        return self.kind_seconds.get(kind, 0.0) * 1000 / tickets if tickets else None


def combine(rounds: Sequence[BenchResult]) -> BenchResult:
    """Several full-load rounds of one run as one result: counts and latencies of them all,
    throughput over the time they ran, each process's CPU-ms per ticket over all their tickets
    (None when a round has none for it), the idle reading taken before the first round and the
    model hops read after the last."""
    if not rounds:
        raise ValueError("no round to combine")
    first, last = rounds[0], rounds[-1]
    statuses: Counter[str] = Counter()
    handlers: Counter[str] = Counter()
    for result in rounds:
        statuses.update(result.statuses)
        handlers.update(result.handlers)
    cpu: dict[str, float | None] | None = None
    if all(result.cpu is not None for result in rounds):
        cpu = {}
        for name in dict.fromkeys(name for result in rounds for name in result.cpu or {}):
            parts = [(result.cpu or {}).get(name) for result in rounds]
            cpu[name] = None if any(part is None for part in parts) else sum(
                (part or 0.0) * result.received for part, result in zip(parts, rounds, strict=True)
            ) / max(1, sum(result.received for result in rounds))
    return BenchResult(
        run_id=first.run_id,
        requested=sum(result.requested for result in rounds),
        published=sum(result.published for result in rounds),
        publish_errors=sum(result.publish_errors for result in rounds),
        first_publish=first.first_publish,
        last_outcome=last.last_outcome,
        latencies=[latency for result in rounds for latency in result.latencies],
        statuses=dict(statuses),
        missing=[ticket for result in rounds for ticket in result.missing],
        duplicates=sum(result.duplicates for result in rounds),
        timed_out=any(result.timed_out for result in rounds),
        handlers=dict(handlers),
        answered_by={ticket: who for result in rounds for ticket, who in result.answered_by.items()},
        model=last.model,
        cpu=cpu,
        idle_cpu=first.idle_cpu,
        seconds=sum(result.duration for result in rounds),
    )


@dataclass(frozen=True)
class Spread:
    """The median of some figures and the lowest and highest of them."""

    median: float
    low: float
    high: float
    count: int

    @property
    def relative(self) -> float:
        """Half the range over the median: 0.05 reads as +-5%."""
        return (self.high - self.low) / 2 / self.median if self.median else 0.0


def spread(values: Sequence[float | None]) -> Spread | None:
    """Median, low and high of the figures that exist (None for none)."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    median = percentile(present, 50)
    assert median is not None
    return Spread(median, min(present), max(present), len(present))


@dataclass(frozen=True)
class Rounds:
    """The figures taken side by side: the platform's CPU-ms per ticket in each full-load
    round, and the in-process baseline's in each of its runs, one before the first round and
    one after each (`baseline_ms[i]` and `baseline_ms[i + 1]` are round `i`'s neighbours)."""

    platform_ms: list[float | None]
    baseline_ms: list[float | None]

    def ratios(self) -> list[float | None]:
        """Each round's overhead: its platform figure over the mean of the two baseline runs
        either side of it, so both halves of a ratio were measured under the same load."""
        ratios: list[float | None] = []
        for i, platform_ms in enumerate(self.platform_ms):
            around = [b for b in self.baseline_ms[i:i + 2] if b is not None]
            ratios.append(overhead_ratio(platform_ms, sum(around) / len(around))
                          if around else None)
        return ratios


def merge_baselines(runs: Sequence[Baseline]) -> Baseline:
    """Several runs of the baseline as one: seconds and tickets per step and kind summed."""
    merged = Baseline(tickets=0, cpu_seconds=0.0, wall_seconds=0.0)
    for run in runs:
        merged.tickets += run.tickets
        merged.cpu_seconds += run.cpu_seconds
        merged.wall_seconds += run.wall_seconds
        for target, source in ((merged.step_seconds, run.step_seconds),
                               (merged.kind_seconds, run.kind_seconds)):
            for key, value in source.items():
                target[key] = target.get(key, 0.0) + value
        for key, count in run.kind_tickets.items():
            merged.kind_tickets[key] = merged.kind_tickets.get(key, 0) + count
        merged.decisions.update(run.decisions)
    return merged


@dataclass(frozen=True)
class Agreement:
    """The baseline's decisions set against the platform's outcomes on the tickets both have."""

    compared: int
    differing: dict[tuple[str, str], int]
    """(in-process, platform) -> tickets, for the tickets decided differently."""

    @property
    def same(self) -> int:
        return self.compared - sum(self.differing.values())


def agreement(baseline: Mapping[str, str], platform: Mapping[str, str]) -> Agreement:
    """Who answers each ticket id in the baseline against who answered it on the platform."""
    both = [ticket for ticket in baseline if ticket in platform]
    differing = Counter((baseline[t], platform[t]) for t in both if baseline[t] != platform[t])
    return Agreement(len(both), dict(differing))


def overhead_ratio(platform_ms: float | None, baseline_ms: float | None) -> float | None:
    """The platform's CPU per ticket over the in-process baseline's (1.0: no overhead)."""
    if platform_ms is None or not baseline_ms:
        return None
    return platform_ms / baseline_ms


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


def paced_offsets(count: int, rate: float) -> list[float]:
    """When each of `count` tickets leaves, in seconds from the first, at `rate` per second."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    return [n / rate for n in range(count)]


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
