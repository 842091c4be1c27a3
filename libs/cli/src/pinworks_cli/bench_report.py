"""The report of a whole `pinworks bench` run: the full-load run (`bench_figures.format_result`),
then the paced run's latency, CPU per ticket per process, the in-process baseline and the
overhead ratio, with the machine's load average (absolute figures move with it; the ratio is
CPU time against CPU time of the same tickets). Over several rounds, each figure is a median
with its range, and the ratio's range is that of the rounds' own ratios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pinworks_cli.bench_figures import (
    MODEL_PROCESS,
    Agreement,
    Baseline,
    BenchResult,
    Rounds,
    Spread,
    agreement,
    format_result,
    missing_processes,
    overhead_ratio,
    platform_total,
    spread,
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
    rounds: Rounds | None = None
    """Each full-load round's platform figure and each baseline run's, side by side."""
    warmup: int = 0
    """Tickets each side decided, unmeasured, before the first measurement."""
    baseline_runs: int = 1
    """How many runs `baseline` sums."""


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


def format_baseline(baseline: Baseline, runs: int = 1, figures: Spread | None = None
                    ) -> list[str]:
    """The baseline's CPU per ticket, by step and by kind of text; over several runs, the
    median run's figure and the lowest and highest, the breakdown over all of them."""
    per_ms = baseline.ms_per_ticket if figures is None else figures.median
    rate = None if not per_ms else 1000 / per_ms
    steps = ", ".join(f"{name} {seconds * 1000 / baseline.tickets:.2f}"
                      for name, seconds in baseline.step_seconds.items()) if baseline.tickets else ""
    kinds = ", ".join(f"{kind} {'-' if (ms := baseline.kind_ms(kind)) is None else f'{ms:.2f}'}"
                      for kind in (SHORT, SENTENCES, MULTI))
    tickets = f"{baseline.tickets // runs} tickets x {runs} runs" if runs > 1 else (
        f"{baseline.tickets} tickets")
    return [
        f"  in-process  {tickets}: "
        + ("-" if per_ms is None else f"{per_ms:.2f} CPU-ms per ticket")
        + ("" if figures is None or runs < 2 else f" (median; {_range(figures)})")
        + ("" if rate is None else f" ({rate:.0f} tickets per CPU-second)"),
        f"  {'':<11} by step (ms) {steps}; by text (ms) {kinds}",
    ]


def format_agreement(figures: Agreement) -> str:
    """How many of the tickets both sides decided the baseline answers as the platform did."""
    if not figures.compared:
        return "  decisions   - (no ticket decided by both the platform and the in-process run)"
    differing = "; ".join(f"in-process {ours} / platform {theirs}: {count}"
                          for (ours, theirs), count in sorted(figures.differing.items()))
    return (f"  decisions   in-process as the platform on {figures.same} of {figures.compared} "
            "tickets both decided (who answers: a handler's draft or a person)"
            + (f"; differing {differing}" if differing else ""))


def _range(figures: Spread) -> str:
    return f"{figures.low:.2f}-{figures.high:.2f}, +-{figures.relative:.0%}"


def format_rounds(rounds: Rounds, warmup: int) -> list[str]:
    """Each round's platform figure and the ratio's median and range over the rounds."""
    platform = spread(rounds.platform_ms)
    shown = " / ".join("-" if ms is None else f"{ms:.2f}" for ms in rounds.platform_ms)
    lines = [f"  rounds      {len(rounds.platform_ms)} at full load, in-process runs before and "
             f"after each; both warmed on {warmup} tickets"]
    lines.append(f"  {'':<11} platform {shown} CPU-ms per ticket"
                 + ("" if platform is None else f" (median {platform.median:.2f}; "
                    f"{_range(platform)})"))
    return lines


def format_overhead(rounds: Rounds) -> str:
    ratios = spread(rounds.ratios())
    if ratios is None:
        return "  overhead    - (platform CPU per ticket / in-process CPU per ticket)"
    return (f"  overhead    {ratios.median:.2f}x (median of {ratios.count} rounds, "
            f"{ratios.low:.2f}-{ratios.high:.2f}x): each round's platform CPU per ticket / the "
            "in-process runs either side")


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
    if run.rounds is not None:
        lines += format_rounds(run.rounds, run.warmup)
    if run.baseline is not None:
        lines += format_baseline(run.baseline, run.baseline_runs,
                                 spread(run.rounds.baseline_ms) if run.rounds else None)
        if run.baseline.decisions and run.full.answered_by:
            lines.append(format_agreement(agreement(run.baseline.decisions,
                                                    run.full.answered_by)))
        if run.rounds is not None:
            lines.append(format_overhead(run.rounds))
        elif run.full.cpu is not None:
            ratio = overhead_ratio(platform_total(run.full.cpu), run.baseline.ms_per_ticket)
            lines.append("  overhead    " + ("-" if ratio is None else f"{ratio:.2f}x")
                         + " (platform CPU per ticket / in-process CPU per ticket)")
    return "\n".join(lines)
