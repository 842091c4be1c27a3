"""CPU of `Ledger.record` on Postgres, per ticket, in batches shaped like three stages' (#20):
this process's CPU (what a service pays: building and redacting rows, encoding parameters,
asyncpg, decoding what comes back, building the publications), the median of several rounds of
fresh tickets, each batch in its own transaction. A benchmark to run by hand, not a timed test.

    router      a routing decision (the shipped policy's output shape), its event, a hand-off
    verifier    a verdict with six checks, its event, a hand-off building the resolved outcome
    escalation  a queue decision, its event, the escalated outcome

Postgres: `DATABASE_URL` (a database of its own is created there and dropped afterwards), else
an embedded server (removed afterwards). `--profile` prints where the CPU of one round of each shape went.

    .venv/bin/python tools/ledger/bench_ledger.py [--rounds 5] [--batches 8] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.migrate import upgrade
from pinworks_common.ledger import records
from pinworks_common.ledger.postgres import PostgresBooks
from pinworks_contracts.messages import Outcome, RouteDecision, utcnow
from pinworks_contracts.subjects import OutcomeStatus
from pinworks_devtools import drop_database, fresh_database, resolve_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "personal_data"))
from bench_audit import queue_decision  # noqa: E402 - a script beside this one, not a package

BATCH = 128
ANSWER = ("Hi Alex, thanks for getting in touch. Cards usually arrive within 3 to 5 working days "
          "of being ordered. If yours has not arrived after 7 working days, you can order a "
          "replacement in the app under Card > Report a problem.")
RULE_REASON = ("error budget: confidence at or below 0.977 for these intents; above the intents' "
               "own thresholds the calibration set's test part certifies at most 1.00% wrong "
               "automatic answers across the policy at 95% confidence (Learn-then-Test, "
               "estimated wrong-probability <= 0.0668: 3565 automatic, 25 wrong, "
               "Clopper-Pearson bound 0.98%)")


RUN = "6a8a8ce3"
"""A run id of `pinworks bench` (fixed: the digits of an id decide how much redaction reads)."""
_numbers = itertools.count()


def _ticket() -> str:
    """An id as `pinworks bench` makes them (its digits are read as a phone number might be)."""
    return f"bench-{RUN}-{next(_numbers)}"


def _publication(ref: records.DecisionRef) -> records.HandOffBuilder:
    def build(stored: dict[str, Any]) -> records.Publication:
        routed = RouteDecision.model_validate(stored)
        return records.Publication("bench.routed", routed.model_dump_json().encode(),
                                   f"{ref.ticket_id}:routed", "BENCH")
    return build


def router(ticket_id: str) -> records.Entries:
    passed_over: list[dict[str, str | int]] = [
        {"rule": "out-of-scope-to-person", "why": "out_of_scope is False, rule needs True"},
        {"rule": "customer-at-risk-to-person",
         "why": "customer state has no signal, rule needs one of ['legal_threat', 'fraud', "
                "'vulnerability']"},
        {"rule": "error-budget-0.977", "through": "error-budget-0.915", "rules": 52,
         "why": "intent card_arrival not in the intents of these 52 rules, error-budget-0.977 "
                "through error-budget-0.915"},
        {"rule": "error-budget-0.912", "why": "confidence 0.995 above 0.912"},
    ]
    decision = RouteDecision(handler="template", rule="confident-template", reason=RULE_REASON,
                             policy_version="policy-d0da09f8de46", fallbacks=["kb", "human"])
    entry = records.Decision(
        ticket_id, "router", "route:0", "router", decision.policy_version,
        inputs={"intent": "card_arrival", "confidence": 0.995, "out_of_scope": False,
                "business_unit": "retail", "channel": None, "classifier_version": "bench",
                "customer_metadata": {"synthetic": True},
                "text_features": {"sentiment": 0.1, "urgency": "normal"}},
        output={**decision.model_dump(mode="json"), "passed_over": passed_over,
                "rule_handler": "template", "budget": None, "budget_exhausted": [],
                "quality_guard": None},
        reason=f"rule {decision.rule}: {decision.reason}", latency_ms=0.05,
        trace_id=secrets.token_hex(16))
    return records.Entries(
        decisions=[entry],
        accountability=[records.AccountabilityEntry(ticket_id, "router:0:route", "router",
                                                    "route to template", decision.policy_version,
                                                    {"rule": decision.rule})],
        handoffs=[records.HandOff(entry.ref, _publication(entry.ref))])


def _resolved(ticket_id: str) -> records.HandOffBuilder:
    def build(stored: dict[str, Any]) -> records.OutcomeEntry:
        return records.OutcomeEntry("automation:0", Outcome(
            ticket_id=ticket_id, platform="support", status=OutcomeStatus.RESOLVED,
            business_unit="retail", intent="card_arrival", confidence=0.995, handler="template",
            answer=ANSWER, cost_usd=Decimal("0.00052"), resolved_by="automation",
            trace_id=secrets.token_hex(16), decided_at=utcnow()))
    return build


def verifier(ticket_id: str) -> records.Entries:
    checks: list[dict[str, Any]] = [
        {"check": name, "version": f"{name}-3", "passed": True, "reasons": [],
         "details": {"score": 0.91, "threshold": 0.5}}
        for name in ("grounding", "policy", "completeness", "tone", "personal_data", "commitments")]
    entry = records.Decision(
        ticket_id, "verifier", "verify:0", "verifier", "+".join(c["version"] for c in checks),
        inputs={"handler": "template", "answer_chars": len(ANSWER)},
        output={"passed": True, "reasons": [], "checks": checks},
        reason="every check passed", latency_ms=3.1, trace_id=secrets.token_hex(16))
    return records.Entries(
        decisions=[entry],
        accountability=[records.AccountabilityEntry(ticket_id, "verifier:0:verify", "verifier",
                                                    "approve", entry.version, {"reasons": []})],
        handoffs=[records.HandOff(entry.ref, _resolved(ticket_id))])


def escalation(ticket_id: str) -> records.Entries:
    due = utcnow().isoformat()
    entry = queue_decision(ticket_id, due)
    outcome = Outcome(
        ticket_id=ticket_id, platform="support", status=OutcomeStatus.ESCALATED,
        business_unit="retail", intent="card_arrival", confidence=0.97, handler="human",
        reasons=["the draft makes a promise"], cost_usd=Decimal("0.00052"),
        resolved_by="automation", trace_id=secrets.token_hex(16), decided_at=utcnow())
    return records.Entries(
        decisions=[entry],
        accountability=[records.AccountabilityEntry(ticket_id, "escalation:0:enqueue",
                                                    "escalation", "enqueue", "1",
                                                    {"priority": 50, "sla_due_at": due})],
        outcomes=[records.OutcomeEntry("automation:0", outcome)])


SHAPES: dict[str, Callable[[str], records.Entries]] = {
    "router": router, "verifier": verifier, "escalation": escalation}


def batch(shape: Callable[[str], records.Entries]) -> records.Entries:
    entries = records.Entries()
    for _ in range(BATCH):
        entries.extend(shape(_ticket()))
    return entries


async def one_round(engine: AsyncEngine, shape: Callable[[str], records.Entries],
                    batches: int, profile: cProfile.Profile | None = None) -> float:
    """CPU ms per ticket of recording `batches` fresh batches, each in its own transaction."""
    books = PostgresBooks(engine)
    work = [batch(shape) for _ in range(batches)]
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for entries in work:
        async with books.transaction() as ledger:
            recorded = await ledger.record(entries)
        assert len(recorded.new_decisions) == BATCH
    if profile is not None:
        profile.disable()
    return (time.process_time() - started) * 1000 / (batches * BATCH)


async def run(url: str, rounds: int, batches: int, profile: bool) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        for shape in SHAPES.values():  # warm: prepared statements, redaction's gazetteers
            await one_round(engine, shape, 2)
        print(f"{'batch shape':12} {'CPU-ms per ticket':>18}  (median of {rounds} rounds of "
              f"{batches} batches of {BATCH}; load average {_load()})")
        for name, shape in SHAPES.items():
            samples = [await one_round(engine, shape, batches) for _ in range(rounds)]
            print(f"{name:12} {statistics.median(samples):18.3f}  "
                  f"(min {min(samples):.3f}, max {max(samples):.3f})")
        if profile:
            for name, shape in SHAPES.items():
                profiler = cProfile.Profile()
                await one_round(engine, shape, batches, profiler)
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
                print(f"--- {name}\n{text.getvalue()}")
    finally:
        await engine.dispose()


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as workdir:
        endpoint = resolve_database(Path(workdir), allow_docker=False)
        own = endpoint.source.startswith("environment")  # someone's server: a database of ours
        url = asyncio.run(fresh_database(endpoint.url, "pinworks_bench")) if own else endpoint.url
        try:
            upgrade(url)
            asyncio.run(run(url, args.rounds, args.batches, args.profile))
        finally:
            if own:
                asyncio.run(drop_database(endpoint.url, url))
            endpoint.close()


if __name__ == "__main__":
    main()
