"""Benchmark what metrics cost a service: the stage runner's per-batch observations, counting
audit rows after commit, and rendering /metrics for a realistically labelled registry.

Usage: .venv/bin/python libs/common/benchmarks/bench_metrics.py [--batches 2000]
"""

from __future__ import annotations

import argparse
import time

from pinworks_common.metrics import (
    COST_USD,
    OUTCOMES,
    StageMetrics,
    exposition,
    observe_costs,
    observe_outcomes,
    until_commit,
)

BATCH = 128


def per_message_us(seconds: float, batches: int) -> float:
    return seconds / (batches * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--units", type=int, default=100, help="business units labelled")
    args = parser.parse_args()

    observer = StageMetrics("bench", "bench")
    started = time.perf_counter()
    for _ in range(args.batches):
        observer.batch(BATCH)
        observer.handled(BATCH, 0.05)
    runner_us = per_message_us(time.perf_counter() - started, args.batches)

    costs: list[tuple[str | None, str, float]] = [
        (f"unit-{n % args.units}", "classifier", 0.00002) for n in range(BATCH)]
    outcomes: list[tuple[str, str | None, str, float | None]] = [
        ("resolved", f"unit-{n % args.units}", "automation", 1.5) for n in range(BATCH)]
    started = time.perf_counter()
    for _ in range(args.batches):
        with until_commit():
            observe_costs(costs)
            observe_outcomes(outcomes)
    audit_us = per_message_us(time.perf_counter() - started, args.batches)

    for unit in range(args.units):  # every unit seen by every labelled family
        for component in ("classifier", "specialist:template", "specialist:kb"):
            COST_USD.labels(f"unit-{unit}", component).inc(0)
        for status in ("resolved", "escalated", "rejected"):
            OUTCOMES.labels(status, f"unit-{unit}", "automation").inc(0)
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        body, _ = exposition()
    render_ms = (time.perf_counter() - started) / rounds * 1000

    print(f"stage runner observations   {runner_us:6.2f} µs per message (batches of {BATCH})")
    print(f"audit counters after commit {audit_us:6.2f} µs per message (cost + outcome)")
    print(f"/metrics with {args.units} units     {render_ms:6.2f} ms per scrape, "
          f"{len(body) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
