"""The report of a whole `pinworks bench` run: the full-load run (`bench_figures.format_result`),
then the paced run's latency, CPU per ticket per process, the in-process baseline and the
overhead ratio, with the machine's load average (absolute figures move with it; the ratio is
CPU time against CPU time of the same tickets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pinworks_cli.bench_figures import (
    MODEL_PROCESS,
    Baseline,
    BenchResult,
    format_result,
    missing_processes,
    overhead_ratio,
    platform_total,
)
from pinworks_cli.bench_hops import format_hops
from pinworks_cli.bench_texts import MULTI, SENTENCES, SHORT


@dataclass
class BenchRun:
    """Everything one `pinworks bench` measured."""

    full: BenchResult
    paced: BenchResult | None = None
    paced_rate: float | None = None
    baseline: Baseline | None = None
    load_before: Sequence[float] = ()
    load_after: Sequence[float] = ()
    platform: str = "running"
    """`running` (the one `pinworks run` started) or `private` (the bench's own)."""


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values) or "-"


def _figures(figures: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {'-' if value is None else f'{value:.2f}'}"
                     for name, value in figures.items())


def format_paced(paced: BenchResult, rate: float) -> str:
    return (f"  paced       {rate:g} tickets/s, {paced.received}/{paced.requested} outcomes: "
            f"p50 {_ms(paced.p50)}, p95 {_ms(paced.p95)}, p99 {_ms(paced.p99)}, "
            f"max {_ms(paced.max_latency)}")


def format_cpu(figures: dict[str, float | None]) -> list[str]:
    """CPU-ms per ticket per process, and the platform's total."""
    if not figures:
        return ["  CPU         no process of the platform found on this machine"]
    shown = _figures(figures)
    total = platform_total(figures)
    lines = [f"  CPU/ticket  (full load, ms) {shown}"]
    missing = ", ".join(missing_processes(figures))
    lines.append("  platform    " + (f"{total:.2f} CPU-ms per ticket" if total is not None else
                                     f"no total: no figure for {missing}")
                 + (" (model server not counted)" if MODEL_PROCESS in figures else ""))
    return lines


def format_baseline(baseline: Baseline) -> list[str]:
    per_ms = baseline.ms_per_ticket
    rate = baseline.tickets_per_cpu_second
    steps = ", ".join(f"{name} {seconds * 1000 / baseline.tickets:.2f}"
                      for name, seconds in baseline.step_seconds.items()) if baseline.tickets else ""
    kinds = ", ".join(f"{kind} {'-' if (ms := baseline.kind_ms(kind)) is None else f'{ms:.2f}'}"
                      for kind in (SHORT, SENTENCES, MULTI))
    return [
        f"  in-process  {baseline.tickets} tickets: "
        + ("-" if per_ms is None else f"{per_ms:.2f} CPU-ms per ticket")
        + ("" if rate is None else f" ({rate:.0f} tickets per CPU-second)"),
        f"  {'':<11} by step (ms) {steps}; by text (ms) {kinds}",
    ]


def format_run(run: BenchRun) -> str:
    lines = [format_result(run.full),
             f"  platform    {run.platform}; load average {_load(run.load_before)} before, "
             f"{_load(run.load_after)} after"]
    if run.paced is not None and run.paced_rate is not None:
        lines.append(format_paced(run.paced, run.paced_rate))
        if run.paced.hops is not None:
            lines += format_hops(run.paced.hops, run.paced.received)
    if run.full.idle_cpu is not None:
        lines.append("  idle CPU    (ms per second, before the run) " + _figures(run.full.idle_cpu))
    if run.full.cpu is not None:
        lines += format_cpu(run.full.cpu)
    if run.baseline is not None:
        lines += format_baseline(run.baseline)
        if run.full.cpu is not None:
            ratio = overhead_ratio(platform_total(run.full.cpu), run.baseline.ms_per_ticket)
            lines.append("  overhead    " + ("-" if ratio is None else f"{ratio:.2f}x")
                         + " (platform CPU per ticket / in-process CPU per ticket)")
    return "\n".join(lines)
