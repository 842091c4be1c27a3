"""One `pinworks bench`: a warm-up of both sides, the full-load run in rounds with CPU readings
of the platform's processes and the in-process baseline of the same tickets before the first
round and after each, then the paced run, one after the other so none of them competes with
another for the CPU.

The platform is the running one (`pinworks run`; its processes are found by pid file and
listening port, so only those on this machine are measured) or, with `--private`, the bench's
own: embedded NATS and Postgres and the five services, started for the run and removed after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinworks_cli.bench import make_ticket, run_bench
from pinworks_cli.bench_figures import BenchResult, Rounds, combine, merge_baselines, platform_total
from pinworks_cli.bench_report import BenchRun


@dataclass(frozen=True)
class BenchPlan:
    count: int
    concurrency: int
    time_limit: float
    paced_rate: float
    paced_count: int
    baseline_count: int
    batch_size: int
    idle_seconds: float = 5.0
    rounds: int = 3
    """Full-load rounds (`count` split among them), with the baseline before each and after
    the last."""
    warmup: int = 300
    """Tickets each side decides, unmeasured, before the first measurement."""


@dataclass(frozen=True)
class Target:
    """Where the bench sends its tickets, as whom, and which processes it measures."""

    nats_url: str
    database_url: str | None
    pids: dict[str, int]
    nats_environ: Mapping[str, str] | None = None
    name: str = "running"
    subject: str | None = None
    """Where tickets are submitted; None: the platform the command acts as."""


@contextlib.contextmanager
def private_platform() -> Iterator[Target]:
    """The bench's own platform, under a temporary directory removed afterwards; the bench
    sends as its operator on the `support` platform's subject (bound to every unit) and watches
    that platform's outcomes."""
    from pinworks_cli.chaos_platform import Platform
    from pinworks_contracts.identities import DEFAULT_PLATFORM, OPERATOR
    from pinworks_contracts.subjects import submission_subject

    base = Path(tempfile.mkdtemp(prefix="pinworks-bench-"))
    # The default ack wait, not the fault tier's 10 s: on a loaded machine a batch can take
    # longer than that, and a redelivered batch would be measured as work.
    platform = Platform(base, {"PINWORKS_ACK_WAIT_SECONDS": "30"})
    try:
        platform.start()
        pids = {name: process.pid for name, process in platform.processes.items()
                if process.pid is not None}
        for name, server in (("nats-server", platform.nats), ("postgres", platform.postgres)):
            if server.pid is not None:
                pids[name] = server.pid
        yield Target(platform.nats.url, platform.postgres.url, pids,
                     platform.nats.client_env(OPERATOR), "private",
                     submission_subject(DEFAULT_PLATFORM))
    finally:
        platform.close()
        shutil.rmtree(base, ignore_errors=True)


def running_target(nats_url: str, database_url: str | None) -> Target:
    from pinworks_cli.bench_cpu import running_platform_pids
    from pinworks_common.commands.platform import find_run_env

    env_file = find_run_env()
    return Target(nats_url, database_url,
                  running_platform_pids(nats_url, database_url,
                                        env_file.parent if env_file else None))


def round_ranges(first: int, count: int, rounds: int) -> list[range]:
    """`count` tickets numbered from `first` in `rounds` runs of nearly equal size (never an
    empty one)."""
    rounds = max(1, min(rounds, count))
    size, extra = divmod(count, rounds)
    ranges, start = [], first
    for i in range(rounds):
        end = start + size + (1 if i < extra else 0)
        ranges.append(range(start, end))
        start = end
    return ranges


def measure(plan: BenchPlan, target: Target, run_id: str, units: list[str],
            run: Callable[[Any], Any], on_outcome: Callable[[int], None] | None = None
            ) -> BenchRun:
    """Warm-up, then the full load in `plan.rounds` rounds with the in-process baseline before
    the first and after each, then the paced run; `run` runs a coroutine (the CLI's
    `run_command`, which turns an unreachable server into one line).

    Both sides are warmed on the same `plan.warmup` tickets (the platform by a full-load run
    whose CPU is not read, the baseline by deciding them untimed), and each round's platform
    figure is set against the baseline runs either side of it, so a ratio's two halves were
    measured under the same load of the machine's other work (`bench_figures.Rounds`)."""
    from pinworks_cli.bench_baseline import InProcess
    from pinworks_cli.bench_cpu import read_cpu

    load_before = os.getloadavg()
    in_process = (InProcess([make_ticket(run_id, n, units) for n in range(plan.baseline_count)],
                            plan.batch_size) if plan.baseline_count else None)
    common: dict[str, Any] = {"run_id": run_id, "nats_environ": target.nats_environ,
                              "subject": target.subject}
    if plan.warmup:
        warm = range(plan.count + plan.paced_count, plan.count + plan.paced_count + plan.warmup)
        run(run_bench(target.nats_url, plan.warmup, plan.concurrency, units,
                      time_limit=plan.time_limit, first=warm.start, **common))
        if in_process is not None:
            in_process.warm(warm, [make_ticket(run_id, n, units) for n in warm])
    baselines = [in_process.measure()] if in_process is not None else []
    rounds: list[BenchResult] = []
    ranges = round_ranges(0, plan.count, plan.rounds)
    for i, numbers in enumerate(ranges):
        done_before = sum(result.received for result in rounds)
        progress = (None if on_outcome is None else
                    lambda done, before=done_before: on_outcome(before + done))
        rounds.append(run(run_bench(
            target.nats_url, len(numbers), plan.concurrency, units,
            time_limit=max(1.0, plan.time_limit - sum(r.duration for r in rounds)),
            first=numbers.start, on_outcome=progress, read_cpu=lambda: read_cpu(target.pids),
            idle_seconds=plan.idle_seconds if i == 0 else 0.0,
            database_url=target.database_url if i == len(ranges) - 1 else None, **common)))
        if in_process is not None:
            baselines.append(in_process.measure())
        if rounds[-1].timed_out:
            break
    full = combine(rounds)
    paced = None
    if plan.paced_count:
        paced = run(run_bench(
            target.nats_url, plan.paced_count, plan.paced_count, units,
            time_limit=plan.paced_count / plan.paced_rate + 60, rate=plan.paced_rate,
            first=plan.count, database_url=target.database_url, hops=True, **common))
    load_after = os.getloadavg()
    figures = None
    if baselines and all(result.cpu is not None for result in rounds):
        figures = Rounds([platform_total(result.cpu or {}) for result in rounds],
                         [baseline.ms_per_ticket for baseline in baselines])
    return BenchRun(full=full, paced=paced, paced_rate=plan.paced_rate,
                    baseline=merge_baselines(baselines) if baselines else None,
                    load_before=load_before, load_after=load_after, platform=target.name,
                    rounds=figures, warmup=plan.warmup,
                    baseline_runs=len(baselines))
