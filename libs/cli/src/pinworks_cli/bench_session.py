"""One `pinworks bench`: the full-load run with CPU readings of the platform's processes, the
paced run, and the in-process baseline of the same tickets, in that order so none of them
competes with another for the CPU.

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


def measure(plan: BenchPlan, target: Target, run_id: str, units: list[str],
            run: Callable[[Any], Any], on_outcome: Callable[[int], None] | None = None
            ) -> BenchRun:
    """Full load, then paced, then in-process; `run` runs a coroutine (the CLI's `run_command`,
    which turns an unreachable server into one line)."""
    from pinworks_cli.bench_baseline import run_baseline
    from pinworks_cli.bench_cpu import read_cpu

    load_before = os.getloadavg()
    full = run(run_bench(
        target.nats_url, plan.count, plan.concurrency, units, time_limit=plan.time_limit,
        run_id=run_id, database_url=target.database_url, on_outcome=on_outcome,
        read_cpu=lambda: read_cpu(target.pids), nats_environ=target.nats_environ,
        idle_seconds=plan.idle_seconds, subject=target.subject))
    paced = None
    if plan.paced_count:
        paced = run(run_bench(
            target.nats_url, plan.paced_count, plan.paced_count, units,
            time_limit=plan.paced_count / plan.paced_rate + 60, run_id=run_id,
            rate=plan.paced_rate, first=plan.count, nats_environ=target.nats_environ,
            subject=target.subject, database_url=target.database_url, hops=True))
    load_after = os.getloadavg()
    baseline = None
    if plan.baseline_count:
        tickets = [make_ticket(run_id, n, units) for n in range(plan.baseline_count)]
        baseline = run_baseline(tickets, plan.batch_size)
    return BenchRun(full=full, paced=paced, paced_rate=plan.paced_rate, baseline=baseline,
                    load_before=load_before, load_after=load_after, platform=target.name)
